// The plan of an evacuation: for each VM on the node, in the order the moves run, the target, the
// move type and variant, why, and why every other host was rejected. Pure: the controller,
// `spec.dryRun` and `vmove plan` all call it over the same facts (ClusterView.hosts(), placement,
// chooseMove), and each VM's placement counts the capacity the VMs before it in the plan take.
import type { MoveMode, MovePriority, MoveRequest, MoveRequestSpec, PlannedMove, RejectedNode, VirtualMachine } from '../../api/types';
import { GiB, parseBytes } from '../../api/quantity';
import { traitsOf } from '../../machines/traits';
import { chooseMove, currentResources, vmStorage } from '../chooseMove';
import type { HostFacts } from '../clusterView';
import { placeVm, type PlacementNeeds, type PlacementQuery } from '../placement';
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

export function planEvacuation(input: PlanInput): PlanStep[] {
  const hosts = input.hosts.map(copyHost);
  const source = hosts.find((h) => h.node === input.node);
  const driver = source?.agent?.capabilities.driver;
  const exclude = [input.node];
  const steps: PlanStep[] = [];
  for (const vm of evacuationOrder(input.vms)) {
    const base = { namespace: vm.metadata.namespace ?? 'default', vmName: vm.metadata.name ?? '', order: steps.length + 1, vm };
    const spec: MoveRequestSpec = { vmName: base.vmName, mode: input.mode, priority: evacuationPriority(input.mode), ...(input.nodeSelector ? { target: { nodeSelector: input.nodeSelector } } : {}) };
    const place = (needs: PlacementNeeds, q: Pick<PlacementQuery, 'nodeName' | 'nodeSelector'>, avoid: readonly string[] = []) =>
      placeVm(hosts, { needs, exclude: [...exclude, ...avoid], inboundLimit: Number.POSITIVE_INFINITY, ...q });
    const choice = chooseMove(spec, { vm, sourceNode: input.node, source, probe: (needs, q) => place(needs, q) });
    if (!choice.ok) {
      steps.push({ ...base, reason: `cannot be moved: ${choice.reason}`, waitable: false, impossible: true });
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
      steps.push({ ...base, ...what, reason: result.message, waitable: result.waitable, impossible: false });
      continue;
    }
    const target = hosts.find((h) => h.node === result.nodeName)!;
    target.used = { cpu: target.used.cpu + c.after.cpu, memoryBytes: target.used.memoryBytes + c.after.memoryBytes };
    target.inbound++;
    const free = target.agent!.capabilities.memoryBytes - target.used.memoryBytes;
    const retried = avoid.length ? (avoided ? `; avoids ${avoid.join(', ')}, where an earlier attempt failed` : `; no host but ${avoid.join(', ')} fits, where an earlier attempt failed`) : '';
    steps.push({
      ...base,
      ...what,
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
