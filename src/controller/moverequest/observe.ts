// What has happened, as the next event for a move's machine: the facts of the cluster (VM,
// hosts, limits, placement) and the status of the agent operation the current state runs —
// sending it first, which is safe at any time because operations are idempotent by opId.
import type { MoveProgress, MoveRequest, Placement, VirtualMachine } from '../../api/types';
import { AgentRequestError } from '../../agent/client';
import type { OperationRequest, OperationStatus } from '../../protocol/operations';
import { componentLogger } from '../../log';
import { contextOf, currentStep, phaseOf, SOURCE_AGENT, type MoveEvent, type MoveState, type Step } from '../../machines';
import { vmStorage } from '../chooseMove';
import type { ControllerDeps } from '../deps';
import { admitMove, competition } from '../limits';
import { hasRoomToGrow, placeVm } from '../placement';
import { vmSpecFor } from '../vmSpec';
import type { MoveReservations } from './reservations';
import { lockVm } from './vmLock';

export interface Observation {
  event?: MoveEvent;
  progress?: MoveProgress;
  placement?: Placement;
  /** Why the move waits (shown as condition Progressing=False). */
  waiting?: { reason: string; message: string };
  requeueAfterMs?: number;
}

export const POLL_MS = 1_000;
/** After a long poll that answered Running: it already waited, so look again at once. */
const RUNNING_POLL_MS = 100;

export const vmKeyOf = (mr: MoveRequest): string => `${mr.metadata.namespace}/${mr.spec.vmName}`;

export class MoveObserver {
  private readonly log = componentLogger('moverequest');

  constructor(
    private readonly d: ControllerDeps,
    private readonly reservations: MoveReservations,
  ) {}

  async observe(mr: MoveRequest, m: MoveState, now: Date): Promise<Observation> {
    const ctx = contextOf(m);
    const cancelWanted = !!mr.spec.cancel || !!mr.metadata.deletionTimestamp;
    if (cancelWanted && !ctx.cancelRequested) return { event: { type: 'CANCEL', at: now.toISOString() } };
    const vm = this.d.view.vms.get(vmKeyOf(mr));
    switch (phaseOf(m)) {
      case 'Pending':
        return this.pending(mr, m, vm, now);
      case 'Scheduling':
        return this.scheduling(mr, m, vm, now);
      default: {
        const step = currentStep(m);
        return step ? this.step(mr, m, vm, step, now) : { requeueAfterMs: 5_000 };
      }
    }
  }

  /** May the move start: VM free (then taken), source reachable (or fenced, for a rebuild), limits. */
  private async pending(mr: MoveRequest, m: MoveState, vm: VirtualMachine | undefined, now: Date): Promise<Observation> {
    const ctx = contextOf(m);
    const at = now.toISOString();
    if (!vm || vm.metadata.deletionTimestamp) return { event: { type: 'REJECTED', at, message: `VirtualMachine ${mr.spec.vmName} no longer exists` } };
    if (ctx.notBefore && now.getTime() < Date.parse(ctx.notBefore)) {
      return { waiting: { reason: 'Backoff', message: `attempt ${ctx.attempt} starts at ${ctx.notBefore}` }, requeueAfterMs: Date.parse(ctx.notBefore) - now.getTime() };
    }
    const holder = vm.status?.moveRef;
    if (holder && holder.uid !== mr.metadata.uid) {
      return { waiting: { reason: 'WaitingForVM', message: `VirtualMachine ${mr.spec.vmName} is being moved by MoveRequest ${holder.name}` }, requeueAfterMs: 5_000 };
    }
    const hosts = this.reservations.hosts(now);
    const source = hosts.find((h) => h.node === ctx.sourceNode);
    const sourceAlive = !!source?.agent?.alive;
    if (!sourceAlive) {
      if (ctx.moveType !== 'Rebuild') {
        return { waiting: { reason: 'SourceUnreachable', message: `the agent of ${ctx.sourceNode} is not alive; the move waits for it` }, requeueAfterMs: 5_000 };
      }
      if (!source?.fenced) {
        return {
          waiting: {
            reason: 'SourceNotFenced',
            message: `the agent of ${ctx.sourceNode} is gone, but the VM may still run there: waiting for the node to be fenced (taint node.kubernetes.io/out-of-service) before rebuilding it elsewhere`,
          },
          requeueAfterMs: 5_000,
        };
      }
    }
    const uid = mr.metadata.uid ?? '';
    const admission = admitMove(
      { uid, source: ctx.sourceNode, moveType: ctx.moveType },
      this.reservations.inFlight(),
      this.d.config.limits,
      competition(this.d.view.moves.list(), { vm: (k) => this.d.view.vms.get(k), host: (n) => hosts.find((h) => h.node === n), now }),
    );
    if (!admission.ok) return { waiting: { reason: 'WaitingForLimits', message: admission.reason }, requeueAfterMs: 2_000 };
    // Hold the slot before awaiting the VM lock: a move admitted meanwhile must count this one.
    this.reservations.hold({ uid, key: `${mr.metadata.namespace}/${mr.metadata.name}`, vmKey: vmKeyOf(mr), moveType: ctx.moveType, source: ctx.sourceNode, after: ctx.after });
    if (!holder) {
      const locked = await lockVm(this.d.writers.vms, mr, vm).catch((e: unknown) => {
        this.reservations.release(uid);
        throw e;
      });
      if (!locked) {
        this.reservations.release(uid);
        return { requeueAfterMs: 200 };
      }
    }
    return { event: { type: 'START', at, sourceReachable: sourceAlive } };
  }

  /** Where the VM goes (or, resizing in place, whether it fits where it is). */
  private scheduling(mr: MoveRequest, m: MoveState, vm: VirtualMachine | undefined, now: Date): Observation {
    const ctx = contextOf(m);
    const at = now.toISOString();
    if (!vm) return { event: { type: 'REJECTED', at, message: `VirtualMachine ${mr.spec.vmName} no longer exists` } };
    const hosts = this.reservations.hosts(now);
    if (ctx.moveType === 'ResizeInPlace') {
      const host = hosts.find((h) => h.node === ctx.sourceNode);
      const grow = { cpu: Math.max(0, ctx.after.cpu - ctx.before.cpu), memoryBytes: Math.max(0, ctx.after.memoryBytes - ctx.before.memoryBytes) };
      if (host?.agent?.alive && hasRoomToGrow(host, grow)) return { event: { type: 'PLACED', at, targetNode: ctx.sourceNode } };
      return { event: { type: 'REJECTED', at, message: `${ctx.sourceNode} has no room for the VM to grow to ${ctx.after.cpu} CPU / ${ctx.after.memoryBytes} bytes` } };
    }
    const inPlaceRebuild = ctx.moveType === 'Rebuild' && mr.spec.target?.nodeName === ctx.sourceNode;
    const result = placeVm(hosts, {
      needs: {
        cpu: ctx.after.cpu,
        memoryBytes: ctx.after.memoryBytes,
        storage: vmStorage(vm),
        liveMigration: ctx.moveType === 'Live',
        blockMigration: ctx.variant === 'BlockMigration',
        driver: hosts.find((h) => h.node === ctx.sourceNode)?.agent?.capabilities.driver,
      },
      exclude: inPlaceRebuild ? [] : [ctx.sourceNode],
      nodeName: mr.spec.target?.nodeName,
      nodeSelector: mr.spec.target?.nodeSelector,
      inboundLimit: this.d.config.limits.inboundPerNode,
    });
    const placement: Placement = { nodeName: result.nodeName, message: result.message, rejected: result.rejected.length ? result.rejected : undefined };
    if (result.nodeName) {
      this.reservations.hold({ uid: mr.metadata.uid ?? '', key: `${mr.metadata.namespace}/${mr.metadata.name}`, vmKey: vmKeyOf(mr), moveType: ctx.moveType, source: ctx.sourceNode, after: ctx.after, target: result.nodeName });
      return { event: { type: 'PLACED', at, targetNode: result.nodeName }, placement };
    }
    const since = [...(mr.status?.history ?? [])].reverse().find((h) => h.phase === 'Scheduling')?.startedAt;
    const waited = since ? (now.getTime() - Date.parse(since)) / 1000 : 0;
    if (result.waitable && waited < this.d.config.schedulingWaitSeconds) {
      return { waiting: { reason: 'WaitingForCapacity', message: `waiting up to ${this.d.config.schedulingWaitSeconds} s for moves in flight to free a host: ${result.message}` }, placement, requeueAfterMs: 2_000 };
    }
    return { event: { type: 'REJECTED', at, message: `no host can take the VM: ${result.message}` }, placement };
  }

  /** Send (or re-send) the current step's operation and report what it says. */
  private async step(mr: MoveRequest, m: MoveState, vm: VirtualMachine | undefined, step: Step & { key: string }, now: Date): Promise<Observation> {
    const ctx = contextOf(m);
    const at = now.toISOString();
    const nodeOf = (role: Step['role']) => (role === 'source' ? ctx.sourceNode : ctx.targetNode);
    /** AGENT_LOST when the agent of the host in `role` is gone for good. */
    const lost = (role: Step['role']): Observation | undefined => {
      const node = nodeOf(role);
      const agent = node ? this.d.view.agent(node, now.getTime()) : undefined;
      if (agent && (agent.alive || agent.expiredForSeconds < this.d.config.agentLostAfterSeconds)) return undefined;
      const why = agent ? `its agent's lease expired ${Math.round(agent.expiredForSeconds)} s ago` : 'it has no agent';
      return { event: { type: 'AGENT_LOST', at, role, message: `${role} host ${node}: ${why}` } };
    };
    // A live migration streams into a hypervisor process on the target that outlives the target's
    // agent (QEMU, libvirtd): the stream may go on, but nothing could finish the move there. So a
    // migrate step watches the target's agent as well as the source's it runs on.
    const loss = lost(step.role) ?? (step.request.kind === 'migrate' && step.role === 'source' ? lost('target') : undefined);
    if (loss) return loss;
    const node = nodeOf(step.role);
    const agent = node ? this.d.view.agent(node, now.getTime()) : undefined;
    if (!agent || !agent.alive) return { requeueAfterMs: POLL_MS };
    if (!vm) return { event: { type: 'STEP_FAILED', at, step: step.key, message: 'the VirtualMachine object is gone', transient: false } };
    const opId = `${mr.metadata.uid}.${step.key}`;
    let st: OperationStatus;
    try {
      st = await this.d.agents.putOperation(agent.endpoint, opId, await this.request(step, vm, m), { waitMs: this.d.config.agentWaitMs });
    } catch (err) {
      if (err instanceof AgentRequestError && !err.transient && err.status !== 401 && err.status !== 403) {
        // The agent understood and refused (bad request, a different body for the same opId).
        return { event: { type: 'STEP_FAILED', at, step: step.key, message: `the agent of ${node} refused ${step.request.kind}: ${err.message}`, transient: false } };
      }
      // The agent lives (its lease is fresh) but does not answer: keep the clock running so the
      // progress timeout can give up on a silent agent.
      this.log.warn({ move: mr.metadata.name, opId, node, err: err instanceof Error ? err.message : String(err) }, 'agent call failed; retrying');
      const w = ctx.watch;
      return {
        event: { type: 'PROGRESS', at, step: step.key, processedBytes: w?.processedBytes ?? 0, remainingBytes: w?.bestRemainingBytes ?? 0, iteration: w?.lastIteration ?? 0 },
        requeueAfterMs: POLL_MS,
      };
    }
    const progress = progressOf(st);
    switch (st.state) {
      case 'Succeeded':
        return {
          event: { type: 'STEP_SUCCEEDED', at, step: step.key, ...(st.endpoint ? { endpoint: st.endpoint } : {}), ...(st.guestHeartbeat !== undefined ? { guestHeartbeat: st.guestHeartbeat } : {}) },
          progress,
        };
      case 'Failed':
        return { event: { type: 'STEP_FAILED', at, step: step.key, message: st.error?.message ?? st.message ?? 'failed', transient: st.error?.transient ?? false }, progress };
      default:
        return {
          event: {
            type: 'PROGRESS',
            at,
            step: step.key,
            processedBytes: (progress?.memoryProcessedBytes ?? 0) + (progress?.diskProcessedBytes ?? 0),
            remainingBytes: (progress?.memoryRemainingBytes ?? 0) + (progress?.diskRemainingBytes ?? 0),
            iteration: progress?.iteration ?? 0,
          },
          progress,
          requeueAfterMs: RUNNING_POLL_MS,
        };
    }
  }

  /** The operation a step sends: its request with the VM as it should be on that host. */
  private async request(step: Step, vm: VirtualMachine, m: MoveState): Promise<OperationRequest> {
    const ctx = contextOf(m);
    const req = { ...step.request, vm: vmSpecFor(vm, step.resources === 'before' ? ctx.before : ctx.after) } as OperationRequest;
    if (req.kind === 'copyDisks' && req.from.endpoint === SOURCE_AGENT) {
      return { ...req, from: { endpoint: this.d.view.agent(ctx.sourceNode)?.endpoint ?? '' } };
    }
    if (req.kind === 'prepareIncoming') {
      // The target must start with the layout the VM runs with now (hotplugged CPUs and DIMMs).
      const source = this.d.view.agent(ctx.sourceNode);
      const info = source ? (await this.d.agents.listVms(source.endpoint)).find((v) => v.id === req.vm.id) : undefined;
      if (info?.machine) return { ...req, vm: { ...req.vm, machine: info.machine } };
    }
    return req;
  }
}

function progressOf(st: OperationStatus): MoveProgress | undefined {
  if (st.migration) {
    const g = st.migration;
    return {
      memoryTotalBytes: g.memoryTotalBytes,
      memoryProcessedBytes: g.memoryTransferredBytes,
      memoryRemainingBytes: g.memoryRemainingBytes,
      diskTotalBytes: g.diskTotalBytes || undefined,
      diskProcessedBytes: g.diskTotalBytes ? g.diskTransferredBytes : undefined,
      diskRemainingBytes: g.diskTotalBytes ? g.diskRemainingBytes : undefined,
      dirtyRateBytesPerSecond: g.dirtyRateBytesPerSecond,
      iteration: g.iteration,
    };
  }
  if (st.copy) return { diskTotalBytes: st.copy.totalBytes, diskProcessedBytes: st.copy.copiedBytes, diskRemainingBytes: Math.max(0, st.copy.totalBytes - st.copy.copiedBytes) };
  return undefined;
}
