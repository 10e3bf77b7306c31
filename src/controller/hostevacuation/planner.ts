// The plan of an evacuation: for each VM on the node, in the order the moves run, the target, the
// move type and variant, why, and why every other host was rejected. Pure: the controller,
// `spec.dryRun` and `vmove plan` all call it over the same facts (ClusterView.hosts(), placement,
// chooseMove), and each VM's placement counts the capacity the VMs before it in the plan take.
import type { EvacuationAction, EvacuationBlocker, MoveMode, MovePriority, MoveRequest, MoveRequestSpec, MoveType, PlannedMove, RejectedNode, VirtualMachine } from '../../api/types';
import { GiB, MiB, parseBytes } from '../../api/quantity';
import { traitsOf } from '../../machines/traits';
import { chooseMove, currentResources, vmStorage } from '../chooseMove';
import type { HostFacts } from '../clusterView';
import { placeVm, type PlacementNeeds, type PlacementQuery } from '../placement';
import { DEFAULT_STRATEGY, strategyMode, strategyWords, type VmStrategy } from './strategy';
import { localDiskBytes, vmKey, vmKeyOfMove } from './vms';

export interface PlanInput {
  /** The node being emptied. */
  node: string;
  vms: VirtualMachine[];
  hosts: HostFacts[];
  /** How the VMs move: the evacuation's mode on a live host, Rebuild on a dead one. */
  mode: MoveMode;
  nodeSelector?: Record<string, string>;
  /** Hosts where a VM's earlier attempts failed (by namespace/name): used only when no other host fits. */
  avoid?: ReadonlyMap<string, readonly string[]>;
  /** Each VM's evacuation strategy (by namespace/name); a VM missing here gets the default. */
  strategies?: ReadonlyMap<string, VmStrategy>;
}

/** One row of the plan, with what the controller needs to create its MoveRequest. */
export interface PlanStep extends PlannedMove {
  vm: VirtualMachine;
  /** No host fits now, but only because of capacity held by moves in flight: it may fit later. */
  waitable: boolean;
  /** The move cannot be made at all (the request would be refused whatever the hosts). */
  impossible: boolean;
  spec?: MoveRequestSpec;
}

/**
 * The order the moves run in: biggest first (memory plus local disks to carry). The longest moves
 * start first, which shortens the whole evacuation, and the biggest VMs find room before smaller
 * ones fill the gaps.
 */
export function evacuationOrder(vms: VirtualMachine[]): VirtualMachine[] {
  const weight = (vm: VirtualMachine): number => currentResources(vm).memoryBytes + localDiskBytes(vm);
  return [...vms].sort((a, b) => weight(b) - weight(a) || currentResources(b).cpu - currentResources(a).cpu || vmKey(a).localeCompare(vmKey(b)));
}

/** An evacuation's own moves: Critical when they recover a dead host's VMs (Rebuild), else Maintenance. */
export const evacuationPriority = (mode: MoveMode): MovePriority => (mode === 'Rebuild' ? 'Critical' : 'Maintenance');

const gib = (bytes: number): string => `${(Math.max(0, bytes) / GiB).toFixed(1)} GiB`;

const ACTION_OF: Record<MoveType, EvacuationAction> = { Live: 'LiveMove', Cold: 'ColdMove', Rebuild: 'Rebuild', ResizeInPlace: 'ColdMove' };

/**
 * Why local disks cannot cross the link within the move's timeout, if they cannot: the engine aborts
 * a step after max(1, GiB to move) × completionTimeoutPerGiB seconds, and the bytes cross at the
 * slowest of the policy's cap and the links the two hosts advertise. Unknown speed: no blocker.
 */
export function diskCopyTooSlow(bytes: number, links: (number | undefined)[], s: Pick<VmStrategy, 'bandwidthMiBps' | 'completionTimeoutPerGiB'>): string | undefined {
  const speeds = [s.bandwidthMiBps > 0 ? s.bandwidthMiBps : undefined, ...links].filter((v): v is number => v !== undefined && Number.isFinite(v) && v > 0);
  if (!speeds.length || bytes <= 0) return undefined;
  const mibps = Math.min(...speeds);
  const seconds = bytes / (mibps * MiB);
  const limit = Math.max(1, bytes / GiB) * s.completionTimeoutPerGiB;
  if (seconds <= limit) return undefined;
  return `its local disks (${gib(bytes)} to copy) take about ${Math.ceil(seconds)} s over the link at ${mibps} MiB/s, more than the move's timeout of ${Math.round(limit)} s (completionTimeoutPerGiB ${s.completionTimeoutPerGiB})`;
}

export function planEvacuation(input: PlanInput): PlanStep[] {
  const hosts = input.hosts.map(copyHost);
  const source = hosts.find((h) => h.node === input.node);
  const driver = source?.agent?.capabilities.driver;
  const exclude = [input.node];
  const steps: PlanStep[] = [];
  for (const vm of evacuationOrder(input.vms)) {
    const st = input.strategies?.get(vmKey(vm)) ?? DEFAULT_STRATEGY;
    const words = strategyWords(st);
    const base = {
      namespace: vm.metadata.namespace ?? 'default',
      vmName: vm.metadata.name ?? '',
      order: steps.length + 1,
      vm,
      strategy: st.strategy,
      strategySource: st.source,
      ...(st.policy !== undefined ? { strategyPolicy: st.policy } : {}),
    };
    const fails = (reason: string, blocker: EvacuationBlocker, extra: Partial<PlanStep> = {}): void => {
      steps.push({ ...base, ...extra, action: 'Fail', reason, blockers: [blocker], waitable: false, impossible: true });
    };
    if (st.strategy === 'Shutdown') {
      const stopped = vm.spec.running === false;
      steps.push({ ...base, action: 'Shutdown', reason: `${words}: ${stopped ? 'stopped' : 'to be stopped'} and left on ${input.node}`, waitable: false, impossible: false });
      continue;
    }
    if (st.strategy === 'None') {
      const message = `${words}: waits for a person — move or delete the VM by hand, or change its evacuationStrategy`;
      steps.push({ ...base, action: 'WaitForPerson', reason: message, blockers: [{ reason: 'StrategyNone', message }], waitable: false, impossible: false });
      continue;
    }
    const sm = strategyMode(st.strategy, input.mode, vm);
    if ('conflict' in sm) {
      fails(`cannot be moved: ${sm.conflict}`, { reason: 'NoLiveTarget', message: sm.conflict });
      continue;
    }
    const spec: MoveRequestSpec = { vmName: base.vmName, mode: sm.mode, priority: evacuationPriority(input.mode), ...(input.nodeSelector ? { target: { nodeSelector: input.nodeSelector } } : {}) };
    const place = (needs: PlacementNeeds, q: Pick<PlacementQuery, 'nodeName' | 'nodeSelector'>, avoid: readonly string[] = []) =>
      placeVm(hosts, { needs, exclude: [...exclude, ...avoid], inboundLimit: Number.POSITIVE_INFINITY, ...q });
    const choice = chooseMove(spec, { vm, sourceNode: input.node, source, probe: (needs, q) => place(needs, q) });
    if (!choice.ok) {
      const live = st.strategy === 'LiveMigrate' && /migration/.test(choice.reason);
      fails(`cannot be moved: ${choice.reason}`, { reason: live ? 'NoLiveTarget' : 'CannotMove', message: choice.reason });
      continue;
    }
    const c = choice.choice;
    const needs: PlacementNeeds = {
      cpu: c.after.cpu,
      memoryBytes: c.after.memoryBytes,
      storage: vmStorage(vm),
      liveMigration: traitsOf(c.moveType).live,
      blockMigration: c.variant === 'BlockMigration',
      driver,
    };
    const copies = c.variant === 'BlockMigration' || c.variant === 'DiskCopy';
    const copyBytes = (needs.liveMigration ? c.before.memoryBytes : 0) + localDiskBytes(vm);
    const slowHere = copies ? diskCopyTooSlow(copyBytes, [source?.agent?.capabilities.linkMiBps], st) : undefined;
    if (slowHere) {
      fails(`cannot be moved: ${slowHere}`, { reason: 'DiskCopyTooSlow', message: slowHere }, { moveType: c.moveType, variant: c.variant });
      continue;
    }
    const avoid = (input.avoid?.get(vmKey(vm)) ?? []).filter((n) => n !== input.node);
    let result = place(needs, { nodeSelector: input.nodeSelector }, avoid);
    let avoided = avoid.length > 0 && !!result.nodeName;
    if (!result.nodeName && avoid.length) {
      result = place(needs, { nodeSelector: input.nodeSelector });
      avoided = false;
    }
    const rejected: RejectedNode[] = result.rejected
      .filter((r) => r.nodeName !== input.node)
      .map((r) => (avoid.includes(r.nodeName) && avoided ? { nodeName: r.nodeName, reason: 'an earlier attempt to move the VM there failed' } : r));
    const what = { moveType: c.moveType, variant: c.variant, ...(rejected.length ? { rejected } : {}) };
    if (!result.nodeName) {
      // LiveMigrate: hosts that would take it cold, none live — it is not moved cold, its part fails.
      if (st.strategy === 'LiveMigrate' && needs.liveMigration && !result.capable && !result.waitable) {
        const cold = place({ ...needs, liveMigration: false, blockMigration: false }, { nodeSelector: input.nodeSelector });
        if (cold.nodeName || cold.capable) {
          const message = `no host can receive it live (${result.message}); ${words} forbids moving it cold`;
          fails(`cannot be moved: ${message}`, { reason: 'NoLiveTarget', message }, what);
          continue;
        }
      }
      steps.push({ ...base, ...what, action: result.waitable ? 'Wait' : 'Fail', blockers: [{ reason: 'NoHostWithRoom', message: result.message }], reason: result.message, waitable: result.waitable, impossible: false });
      continue;
    }
    const target = hosts.find((h) => h.node === result.nodeName)!;
    const slowThere = copies ? diskCopyTooSlow(copyBytes, [source?.agent?.capabilities.linkMiBps, target.agent?.capabilities.linkMiBps], st) : undefined;
    if (slowThere) {
      fails(`cannot be moved: ${slowThere}`, { reason: 'DiskCopyTooSlow', message: `to ${target.node}: ${slowThere}` }, what);
      continue;
    }
    target.used = { cpu: target.used.cpu + c.after.cpu, memoryBytes: target.used.memoryBytes + c.after.memoryBytes };
    target.inbound++;
    const free = target.agent!.capabilities.memoryBytes - target.used.memoryBytes;
    const retried = avoid.length ? (avoided ? `; avoids ${avoid.join(', ')}, where an earlier attempt failed` : `; no host but ${avoid.join(', ')} fits, where an earlier attempt failed`) : '';
    steps.push({
      ...base,
      ...what,
      action: ACTION_OF[c.moveType],
      targetNode: result.nodeName,
      reason: `${c.reason}; ${result.nodeName} has the most room left (${gib(free)} of memory free after)${retried}`,
      waitable: false,
      impossible: false,
      spec: { ...spec, target: { nodeName: result.nodeName } },
    });
  }
  return steps;
}

/** The plan as status.plan shows it (the MoveRequest details stripped). */
export const plannedMove = (s: PlanStep, withRejected = true): PlannedMove => ({
  namespace: s.namespace,
  vmName: s.vmName,
  order: s.order,
  ...(s.targetNode ? { targetNode: s.targetNode } : {}),
  ...(s.moveType ? { moveType: s.moveType } : {}),
  ...(s.variant ? { variant: s.variant } : {}),
  reason: s.reason,
  ...(s.rejected && (withRejected || !s.targetNode) ? { rejected: s.rejected } : {}),
  ...(s.strategy ? { strategy: s.strategy } : {}),
  ...(s.strategySource ? { strategySource: s.strategySource } : {}),
  ...(s.strategyPolicy !== undefined ? { strategyPolicy: s.strategyPolicy } : {}),
  ...(s.action ? { action: s.action } : {}),
  ...(s.blockers?.length ? { blockers: s.blockers } : {}),
});

function copyHost(h: HostFacts): HostFacts {
  return { ...h, used: { ...h.used }, heldByMoves: { ...h.heldByMoves } };
}

/**
 * Host facts for planning: ClusterView.hosts() counts moves in flight; moves still Pending that
 * name their target will take room there too, so count them (every evacuation's and standalone),
 * or two plans made side by side would both fill the same gap.
 */
export function withPendingMoves(hosts: HostFacts[], moves: MoveRequest[], vmOf: (key: string) => VirtualMachine | undefined): HostFacts[] {
  const out = hosts.map(copyHost);
  const byNode = new Map(out.map((h) => [h.node, h]));
  for (const mr of moves) {
    const phase = mr.status?.phase;
    if ((phase && phase !== 'Pending') || mr.spec.cancel || mr.metadata.deletionTimestamp) continue;
    const target = byNode.get(mr.spec.target?.nodeName ?? '');
    const vm = vmOf(vmKeyOfMove(mr));
    if (!target || !vm) continue;
    const now = currentResources(vm);
    const cpu = mr.spec.resources?.cpu ?? now.cpu;
    const memoryBytes = mr.spec.resources?.memory !== undefined ? parseBytes(mr.spec.resources.memory) : now.memoryBytes;
    const from = vm.status?.nodeName ?? vm.status?.scheduledNode;
    if (from === target.node) continue;
    target.used = { cpu: target.used.cpu + cpu, memoryBytes: target.used.memoryBytes + memoryBytes };
  }
  return out;
}
