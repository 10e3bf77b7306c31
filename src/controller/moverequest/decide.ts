// What to tell a move's machine next, from the facts (facts.ts): an event, or why the move waits —
// and what must be done for that event to hold (intents, carried out by intents.ts): hold a slot,
// take the VM, send the current state's step operation, whose answer is then the event
// (readStepAnswer). Sending a step again is safe at any time: operations are idempotent by opId.
// Pure.
import { GUEST_READY, type MoveProgress, type MoveRequest, type Placement, type VirtualMachine } from '../../api/types';
import type { OperationRequest, OperationStatus } from '../../protocol/operations';
import type { VmInfo } from '../../protocol/vm';
import { keyOf } from '../../kube/paths';
import { contextOf, currentStep, GUEST_BOOT_WAIT_MS, phaseOf, SOURCE_AGENT, traitsOf, type GuestBaseline, type MoveContext, type MoveEvent, type MoveState, type Step } from '../../machines';
import { RUNNING_REQUEUE_MS, type AgentAnswer } from '../agentOps';
import { vmStorage } from '../chooseMove';
import type { MoveInFlight } from '../clusterView';
import { findCondition } from '../conditions';
import { admitMove } from '../limits';
import { hasRoomToGrow, placeVm } from '../placement';
import { vmSpecFor } from '../vmSpec';
import { vmKeyOf, type MoveFacts } from './facts';

/** What the machine is told, and what the reconciler records and when it looks again. */
export interface Observation {
  event?: MoveEvent;
  progress?: MoveProgress;
  placement?: Placement;
  /** Why the move waits (shown as condition Progressing=False). */
  waiting?: { reason: string; message: string };
  requeueAfterMs?: number;
}

/** Send (or re-send) a step's operation to the agent of `node`; its answer is the event (so this intent comes last). */
export interface PutStep {
  kind: 'putStep';
  step: Step & { key: string };
  node: string;
  endpoint: string;
  opId: string;
  request: OperationRequest;
  /** A prepareIncoming first asks this agent (the source's) for the VM's layout (withLayout). */
  layoutFrom?: { node: string; endpoint: string };
  /** When the facts were read: the time of the event the answer makes. */
  at: string;
}

export type MoveIntent =
  /** Count the move against the limits and its target's capacity before its status says so. */
  | { kind: 'holdSlot'; slot: MoveInFlight }
  /** Take the VM for this move; another request may win the race, and then the event does not hold. */
  | { kind: 'lockVm'; vm: VirtualMachine }
  | PutStep;

export interface MoveDecision extends Observation {
  /** In order; the event holds only once all are done. */
  intents: MoveIntent[];
}

export const POLL_MS = 1_000;

export function decideMove(mr: MoveRequest, m: MoveState, f: MoveFacts): MoveDecision {
  const ctx = contextOf(m);
  const cancelWanted = !!mr.spec.cancel || !!mr.metadata.deletionTimestamp;
  if (cancelWanted && !ctx.cancelRequested) return { event: { type: 'CANCEL', at: f.now.toISOString() }, intents: [] };
  switch (phaseOf(m)) {
    case 'Pending':
      return pending(mr, ctx, f);
    case 'Scheduling':
      return scheduling(mr, ctx, f);
    default: {
      const step = currentStep(m);
      return step ? stepDecision(mr, ctx, step, f) : { requeueAfterMs: 5_000, intents: [] };
    }
  }
}

const wait = (reason: string, message: string, requeueAfterMs: number): MoveDecision => ({ waiting: { reason, message }, requeueAfterMs, intents: [] });

const slotOf = (mr: MoveRequest, ctx: MoveContext, target?: string): MoveInFlight => ({
  uid: mr.metadata.uid ?? '',
  key: keyOf(mr),
  vmKey: vmKeyOf(mr),
  moveType: ctx.moveType,
  source: ctx.sourceNode,
  after: ctx.after,
  ...(target ? { target } : {}),
});

/** May the move start: VM free (then taken), source reachable (or fenced, for a move that needs no source), limits. */
function pending(mr: MoveRequest, ctx: MoveContext, f: MoveFacts): MoveDecision {
  const { now, vm } = f;
  const at = now.toISOString();
  if (!vm || vm.metadata.deletionTimestamp) return { event: { type: 'REJECTED', at, message: `VirtualMachine ${mr.spec.vmName} no longer exists` }, intents: [] };
  if (ctx.notBefore && now.getTime() < Date.parse(ctx.notBefore)) {
    return wait('Backoff', `attempt ${ctx.attempt} starts at ${ctx.notBefore}`, Date.parse(ctx.notBefore) - now.getTime());
  }
  const holder = vm.status?.moveRef;
  if (holder && holder.uid !== mr.metadata.uid) return wait('WaitingForVM', `VirtualMachine ${mr.spec.vmName} is being moved by MoveRequest ${holder.name}`, 5_000);
  const sourceAlive = !!f.agent(ctx.sourceNode)?.alive;
  if (!sourceAlive) {
    if (!traitsOf(ctx.moveType).startsFromFencedSource) return wait('SourceUnreachable', `the agent of ${ctx.sourceNode} is not alive; the move waits for it`, 5_000);
    if (!f.fenced(ctx.sourceNode)) {
      return wait(
        'SourceNotFenced',
        `the agent of ${ctx.sourceNode} is gone, but the VM may still run there: waiting for the node to be fenced (taint node.kubernetes.io/out-of-service) before rebuilding it elsewhere`,
        5_000,
      );
    }
  }
  const guest = traitsOf(ctx.moveType).live && ctx.vmRunning ? guestBaseline(mr, vm, now) : undefined;
  if (guest && 'booting' in guest) return wait('GuestBooting', guest.booting, Math.min(2_000, Math.max(100, guest.untilMs)));
  const admission = admitMove({ uid: mr.metadata.uid ?? '', source: ctx.sourceNode, moveType: ctx.moveType }, f.inFlight(), f.config.limits, f.competition());
  if (!admission.ok) return wait('WaitingForLimits', admission.reason, 2_000);
  // Hold the slot before awaiting the VM lock: a move admitted meanwhile must count this one.
  const intents: MoveIntent[] = [{ kind: 'holdSlot', slot: slotOf(mr, ctx) }];
  if (!holder) intents.push({ kind: 'lockVm', vm });
  return { event: { type: 'START', at, sourceReachable: sourceAlive, ...(guest ? { sourceGuest: guest.baseline } : {}) }, intents };
}

/**
 * What the source shows of the guest (the VM's GuestReady as its host reported it) — or, while
 * the guest is still booting and has not booted for GUEST_BOOT_WAIT_MS yet, why the live move
 * waits: migrating a guest in the middle of its boot gains nothing, and a ready guest can be held
 * to its heartbeat. A guest that does not come up in time is moved anyway (verified by what can
 * be seen). Pure.
 */
export function guestBaseline(mr: MoveRequest, vm: VirtualMachine, now: Date): { baseline: GuestBaseline } | { booting: string; untilMs: number } {
  const c = findCondition(vm.status?.conditions, GUEST_READY);
  const g = vm.status?.guest;
  const seen = { ...(g?.heartbeat !== undefined ? { heartbeat: g.heartbeat } : {}), ...(g?.heartbeatTime ? { heartbeatTime: g.heartbeatTime } : {}) };
  const node = vm.status?.nodeName ?? 'its host';
  if (!c) return { baseline: { state: 'Unknown', reason: 'NotReported', ...seen } };
  if (c.status === 'True') return { baseline: { state: 'Ready', reason: c.reason, ...withWait(mr, now), ...seen } };
  if (c.status === 'Unknown') return { baseline: { state: 'Unknown', reason: c.reason, ...seen } };
  if (c.reason === 'Booting') {
    const until = Date.parse(c.lastTransitionTime) + GUEST_BOOT_WAIT_MS;
    if (now.getTime() < until) {
      return { booting: `the guest on ${node} is still booting: the live move waits for its first heartbeat, until ${new Date(until).toISOString()} at the latest`, untilMs: until - now.getTime() };
    }
  }
  return { baseline: { state: 'NotReady', reason: c.reason, ...withWait(mr, now), ...seen } };
}

/** How long this attempt waited in Pending for the guest to boot, when that is what it waited for. */
function withWait(mr: MoveRequest, now: Date): { waitedSeconds?: number } {
  if (findCondition(mr.status?.conditions, 'Progressing')?.reason !== 'GuestBooting') return {};
  const since = [...(mr.status?.history ?? [])].reverse().find((h) => h.phase === 'Pending')?.startedAt ?? mr.metadata.creationTimestamp;
  return since ? { waitedSeconds: Math.max(0, Math.round((now.getTime() - Date.parse(since)) / 1000)) } : {};
}

/** Where the VM goes (or, staying on its host, whether it fits where it is). */
function scheduling(mr: MoveRequest, ctx: MoveContext, f: MoveFacts): MoveDecision {
  const { now, vm } = f;
  const at = now.toISOString();
  if (!vm) return { event: { type: 'REJECTED', at, message: `VirtualMachine ${mr.spec.vmName} no longer exists` }, intents: [] };
  const hosts = f.hosts();
  const traits = traitsOf(ctx.moveType);
  if (traits.sameHost) {
    const host = hosts.find((h) => h.node === ctx.sourceNode);
    const grow = { cpu: Math.max(0, ctx.after.cpu - ctx.before.cpu), memoryBytes: Math.max(0, ctx.after.memoryBytes - ctx.before.memoryBytes) };
    if (host?.agent?.alive && hasRoomToGrow(host, grow)) return { event: { type: 'PLACED', at, targetNode: ctx.sourceNode }, intents: [] };
    return { event: { type: 'REJECTED', at, message: `${ctx.sourceNode} has no room for the VM to grow to ${ctx.after.cpu} CPU / ${ctx.after.memoryBytes} bytes` }, intents: [] };
  }
  const inPlaceRebuild = traits.startsFromFencedSource && mr.spec.target?.nodeName === ctx.sourceNode;
  const result = placeVm(hosts, {
    needs: {
      cpu: ctx.after.cpu,
      memoryBytes: ctx.after.memoryBytes,
      storage: vmStorage(vm),
      liveMigration: traits.live,
      blockMigration: ctx.variant === 'BlockMigration',
      driver: hosts.find((h) => h.node === ctx.sourceNode)?.agent?.capabilities.driver,
    },
    exclude: inPlaceRebuild ? [] : [ctx.sourceNode],
    nodeName: mr.spec.target?.nodeName,
    nodeSelector: mr.spec.target?.nodeSelector,
    inboundLimit: f.config.limits.inboundPerNode,
  });
  const placement: Placement = { nodeName: result.nodeName, message: result.message, rejected: result.rejected.length ? result.rejected : undefined };
  if (result.nodeName) return { event: { type: 'PLACED', at, targetNode: result.nodeName }, placement, intents: [{ kind: 'holdSlot', slot: slotOf(mr, ctx, result.nodeName) }] };
  const since = [...(mr.status?.history ?? [])].reverse().find((h) => h.phase === 'Scheduling')?.startedAt;
  const waited = since ? (now.getTime() - Date.parse(since)) / 1000 : 0;
  if (result.waitable && waited < f.config.schedulingWaitSeconds) {
    return { ...wait('WaitingForCapacity', `waiting up to ${f.config.schedulingWaitSeconds} s for moves in flight to free a host: ${result.message}`, 2_000), placement };
  }
  return { event: { type: 'REJECTED', at, message: `no host can take the VM: ${result.message}` }, placement, intents: [] };
}

/** Give up on a host whose agent is gone for good, wait for one that is down a moment, else send the step. */
function stepDecision(mr: MoveRequest, ctx: MoveContext, step: Step & { key: string }, f: MoveFacts): MoveDecision {
  const at = f.now.toISOString();
  const nodeOf = (role: Step['role']): string | undefined => (role === 'source' ? ctx.sourceNode : ctx.targetNode);
  /** AGENT_LOST when the agent of the host in `role` is gone for good. */
  const lost = (role: Step['role']): MoveEvent | undefined => {
    const node = nodeOf(role);
    const agent = node ? f.agent(node) : undefined;
    if (agent && (agent.alive || agent.expiredForSeconds < f.config.agentLostAfterSeconds)) return undefined;
    const why = agent ? `its agent's lease expired ${Math.round(agent.expiredForSeconds)} s ago` : 'it has no agent';
    return { type: 'AGENT_LOST', at, role, message: `${role} host ${node}: ${why}` };
  };
  // A live migration streams into a hypervisor process on the target that outlives the target's
  // agent (QEMU, libvirtd): the stream may go on, but nothing could finish the move there. So a
  // migrate step watches the target's agent as well as the source's it runs on.
  const loss = lost(step.role) ?? (step.request.kind === 'migrate' && step.role === 'source' ? lost('target') : undefined);
  if (loss) return { event: loss, intents: [] };
  const node = nodeOf(step.role);
  const agent = node ? f.agent(node) : undefined;
  if (!node || !agent || !agent.alive) return { requeueAfterMs: POLL_MS, intents: [] };
  if (!f.vm) return { event: { type: 'STEP_FAILED', at, step: step.key, message: 'the VirtualMachine object is gone', transient: false }, intents: [] };
  const sourceEndpoint = f.agent(ctx.sourceNode)?.endpoint;
  const request = { ...step.request, vm: vmSpecFor(f.vm, step.resources === 'before' ? ctx.before : ctx.after) } as OperationRequest;
  const put: Omit<PutStep, 'request'> = { kind: 'putStep', step, node, endpoint: agent.endpoint, opId: `${mr.metadata.uid}.${step.key}`, at };
  if (request.kind === 'copyDisks' && request.from.endpoint === SOURCE_AGENT) {
    return { intents: [{ ...put, request: { ...request, from: { endpoint: sourceEndpoint ?? '' } } }] };
  }
  // The target must start with the layout the VM runs with now (hotplugged CPUs and DIMMs): the source's agent says which.
  if (request.kind === 'prepareIncoming' && sourceEndpoint) return { intents: [{ ...put, request, layoutFrom: { node: ctx.sourceNode, endpoint: sourceEndpoint } }] };
  return { intents: [{ ...put, request }] };
}

/** A prepareIncoming request with the machine layout the source reports for the VM. */
export function withLayout(request: OperationRequest, onSource: VmInfo[]): OperationRequest {
  const info = onSource.find((v) => v.id === request.vm.id);
  return info?.machine ? { ...request, vm: { ...request.vm, machine: info.machine } } : request;
}

/** The event a step's operation answer makes. */
export function readStepAnswer(put: PutStep, ctx: MoveContext, a: AgentAnswer<OperationStatus>): Observation {
  const { step, at } = put;
  if ('refused' in a) {
    return { event: { type: 'STEP_FAILED', at, step: step.key, message: `the agent of ${put.node} refused ${step.request.kind}: ${a.refused}`, transient: false } };
  }
  if ('unreachable' in a) {
    // The agent lives (its lease is fresh) but does not answer: keep the clock running so the
    // progress timeout can give up on a silent agent.
    const w = ctx.watch;
    return {
      event: { type: 'PROGRESS', at, step: step.key, processedBytes: w?.processedBytes ?? 0, remainingBytes: w?.bestRemainingBytes ?? 0, iteration: w?.lastIteration ?? 0 },
      requeueAfterMs: POLL_MS,
    };
  }
  const st = a.answer;
  const progress = progressOf(st);
  switch (st.state) {
    case 'Succeeded':
      return {
        event: {
          type: 'STEP_SUCCEEDED',
          at,
          step: step.key,
          ...(st.endpoint ? { endpoint: st.endpoint } : {}),
          ...(st.guestHeartbeat !== undefined ? { guestHeartbeat: st.guestHeartbeat } : {}),
          ...(st.migration?.downtimeMs !== undefined ? { downtimeMs: st.migration.downtimeMs } : {}),
          ...(st.message ? { message: st.message } : {}),
        },
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
        requeueAfterMs: RUNNING_REQUEUE_MS,
      };
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
