// Reconciles one MoveRequest: observe → decide (the machine) → act (one idempotent agent
// operation) → record (status, written before the next act) → say when to look again.
// The controller may die at any instant: the machine's state lives only in `.status.machine`,
// and every agent operation is keyed by the request's UID, attempt and step.
import type { MoveProgress, MoveRequest, MoveRequestStatus, Placement, VirtualMachine } from '../../api/types';
import { AgentRequestError } from '../../agent/client';
import type { OperationRequest, OperationStatus } from '../../agent/protocol';
import { formatBytes } from '../../api/quantity';
import { isConflict, type KubeApi } from '../../kube/api';
import type { EventRecorder } from '../../kube/events';
import { vmovePath } from '../../kube/paths';
import type { ReconcileResult } from '../../kube/workQueue';
import { componentLogger } from '../../log';
import {
  advance,
  contextOf,
  currentStep,
  isDone,
  phaseOf,
  restoreMove,
  SOURCE_AGENT,
  startMove,
  type MoveEvent,
  type MoveState,
  type Note,
  type PersistedMove,
  type Step,
} from '../../machines';
import { isTerminal } from '../../machines/vocabulary';
import type { AgentOps } from '../agentOps';
import { chooseMove, vmRunning, vmStorage } from '../chooseMove';
import type { ClusterView, HostFacts, MoveInFlight } from '../clusterView';
import { resolvePolicy, type ControllerConfig } from '../config';
import type { ControllerMetrics } from '../metrics';
import { admitMove, competition } from '../limits';
import { hasRoomToGrow, placeVm } from '../placement';
import { vmSpecFor } from '../vmSpec';
import { endedWithoutMove, moveStatus, waitingWithoutMove } from './status';

export const MOVE_FINALIZER = 'vmove.dev/move-protection';
/** Transitions one reconcile may take before yielding to other requests. */
const MAX_TRANSITIONS = 25;
/** Progress-only status writes at most this often per request. */
const PROGRESS_WRITE_INTERVAL_MS = 2_000;
const POLL_MS = 1_000;
const RUNNING_POLL_MS = 100;

export interface MoveDeps {
  api: KubeApi;
  view: ClusterView;
  agents: AgentOps;
  events: EventRecorder;
  config: ControllerConfig;
  metrics?: ControllerMetrics;
}

interface Observation {
  event?: MoveEvent;
  progress?: MoveProgress;
  placement?: Placement;
  waiting?: { reason: string; message: string };
  requeueAfterMs?: number;
}

const vmKeyOf = (mr: MoveRequest): string => `${mr.metadata.namespace}/${mr.spec.vmName}`;
const hasFinalizer = (mr: MoveRequest): boolean => !!mr.metadata.finalizers?.includes(MOVE_FINALIZER);

export class MoveRequestReconciler {
  /** Moves admitted here whose admission the cache does not show yet (keeps limits exact between awaits). */
  private readonly reserved = new Map<string, MoveInFlight>();
  private readonly lastWrite = new Map<string, number>();
  private readonly log = componentLogger('moverequest');

  constructor(private readonly d: MoveDeps) {}

  readonly reconcile = async (key: string): Promise<ReconcileResult> => {
    let mr = this.d.view.moves.get(key);
    this.log.debug({ key, phase: mr?.status?.phase, rv: mr?.metadata.resourceVersion }, 'reconcile');
    if (!mr) return {};
    const now = new Date();
    const deleting = !!mr.metadata.deletionTimestamp;
    if (mr.status?.phase && isTerminal(mr.status.phase)) {
      await this.finish(mr);
      return {};
    }
    if (deleting && !mr.status?.machine) {
      if (hasFinalizer(mr)) mr = await this.writeStatus(mr, endedWithoutMove(mr.status, 'Cancelled', 'Deleted', 'deleted before the move started; nothing was touched', now.toISOString(), mr.metadata.generation));
      await this.finish(mr);
      return {};
    }
    if (!deleting && !hasFinalizer(mr)) mr = await this.addFinalizer(mr);

    let m: MoveState;
    if (!mr.status?.machine) {
      const intake = this.intake(mr, now);
      if ('ended' in intake) {
        mr = await this.writeStatus(mr, endedWithoutMove(mr.status, intake.ended, intake.reason, intake.message, now.toISOString(), mr.metadata.generation));
        this.d.events.record(mr, intake.ended === 'Failed' ? 'Warning' : 'Normal', intake.ended, intake.message);
        await this.finish(mr);
        return {};
      }
      if ('waiting' in intake) {
        const status = waitingWithoutMove(mr.status, intake.waiting.reason, intake.waiting.message, now.toISOString(), mr.metadata.generation);
        if (JSON.stringify(status) !== JSON.stringify(mr.status)) {
          mr = await this.writeStatus(mr, status);
          this.d.events.record(mr, 'Normal', intake.waiting.reason, intake.waiting.message);
        }
        return { requeueAfterMs: 5_000 };
      }
      m = intake.move;
      mr = await this.writeStatus(mr, moveStatus(mr.status, m, { now: now.toISOString(), generation: mr.metadata.generation, notes: [] }));
      this.d.events.record(mr, 'Normal', 'Accepted', `${contextOf(m).moveType} move (${contextOf(m).variant}): ${contextOf(m).reason}`);
    } else {
      m = restoreMove(mr.status.machine as unknown as PersistedMove);
    }

    let requeue: number | undefined;
    for (let i = 0; i < MAX_TRANSITIONS; i++) {
      const at = new Date();
      const obs = await this.observe(mr, m, at);
      if (!obs.event) {
        if (obs.waiting || obs.placement) {
          const status = moveStatus(mr.status, m, { now: at.toISOString(), generation: mr.metadata.generation, notes: [], waiting: obs.waiting, placement: obs.placement });
          if (JSON.stringify({ ...status, history: undefined }) !== JSON.stringify({ ...mr.status, history: undefined })) mr = await this.writeStatus(mr, status);
        }
        requeue = obs.requeueAfterMs;
        break;
      }
      const before = m;
      const { state, notes } = advance(m, obs.event);
      const samePhase = phaseOf(state) === phaseOf(before);
      if (samePhase && notes.length === 0 && JSON.stringify(state.snapshot.context) === JSON.stringify(before.snapshot.context)) {
        requeue = obs.requeueAfterMs ?? POLL_MS;
        break;
      }
      m = state;
      const progressOnly = samePhase && notes.length === 0 && obs.event.type === 'PROGRESS';
      if (!progressOnly || Date.now() - (this.lastWrite.get(key) ?? 0) >= PROGRESS_WRITE_INTERVAL_MS) {
        mr = await this.writeStatus(mr, moveStatus(mr.status, m, { now: at.toISOString(), generation: mr.metadata.generation, notes, progress: obs.progress, placement: obs.placement }));
      }
      this.announce(mr, before, m, notes);
      if (isDone(m)) {
        const ctx = contextOf(m);
        this.d.metrics?.movesFinished.inc({ move_type: ctx.moveType, phase: phaseOf(m) });
        if (mr.status?.startTime) this.d.metrics?.moveDuration.observe({ move_type: ctx.moveType, phase: phaseOf(m) }, (Date.now() - Date.parse(mr.status.startTime)) / 1000);
        await this.finish(mr);
        return {};
      }
      if (progressOnly) {
        requeue = obs.requeueAfterMs ?? POLL_MS;
        break;
      }
    }
    return { requeueAfterMs: requeue ?? POLL_MS };
  };

  // ---------------------------------------------------------------- intake

  /** Before a machine exists: is there a VM, is it free, which machine moves it. */
  private intake(
    mr: MoveRequest,
    now: Date,
  ): { move: MoveState } | { ended: 'Failed' | 'Cancelled'; reason: string; message: string } | { waiting: { reason: string; message: string } } {
    if (mr.spec.cancel) return { ended: 'Cancelled', reason: 'Cancelled', message: 'cancelled before the move started; nothing was touched' };
    const vm = this.d.view.vms.get(vmKeyOf(mr));
    if (!vm) return { ended: 'Failed', reason: 'VMNotFound', message: `VirtualMachine ${mr.spec.vmName} does not exist in namespace ${mr.metadata.namespace}` };
    if (vm.metadata.deletionTimestamp) return { ended: 'Failed', reason: 'VMDeleting', message: `VirtualMachine ${mr.spec.vmName} is being deleted` };
    const holder = vm.status?.moveRef;
    if (holder && holder.uid !== mr.metadata.uid) {
      return { waiting: { reason: 'WaitingForVM', message: `VirtualMachine ${mr.spec.vmName} is being moved by MoveRequest ${holder.name}; this request starts when that one ends` } };
    }
    // Requests for one VM go in the order they were made: the move type is chosen from where the
    // VM is when its turn comes, not from where it was when the request arrived.
    const ahead = this.earlierRequestFor(mr);
    if (ahead) {
      return { waiting: { reason: 'WaitingForVM', message: `VirtualMachine ${mr.spec.vmName} is being moved by MoveRequest ${ahead}; this request starts when that one ends` } };
    }
    const sourceNode = vm.status?.nodeName ?? vm.status?.scheduledNode;
    if (!sourceNode || vm.status?.phase === 'Pending' || !vm.status?.phase) {
      return { waiting: { reason: 'VMNotReady', message: `VirtualMachine ${mr.spec.vmName} is not running or stopped on a host yet` } };
    }
    if (vm.status.phase === 'Failed') {
      const why = vm.status.conditions?.find((c) => c.type === 'Failed')?.message;
      return { ended: 'Failed', reason: 'VMFailed', message: `VirtualMachine ${mr.spec.vmName} is Failed${why ? `: ${why}` : ''}; fix or recreate it before moving it` };
    }
    const hosts = this.hostsWithReservations(now);
    const source = hosts.find((h) => h.node === sourceNode);
    const choice = chooseMove(mr.spec, {
      vm,
      sourceNode,
      source,
      probe: (needs, q) => placeVm(hosts, { needs, exclude: [sourceNode], inboundLimit: this.d.config.limits.inboundPerNode, ...q }),
    });
    if (!choice.ok) return { ended: 'Failed', reason: 'InvalidMove', message: choice.reason };
    const c = choice.choice;
    const policy = resolvePolicy(mr.spec.policy, this.d.config.policyDefaults);
    const diskBytes = c.moveType === 'Live' && c.variant === 'SharedStorage' ? 0 : (vmSpecFor(vm, c.after).disks.filter((d) => d.storage === 'Local').reduce((s, d) => s + d.sizeBytes, 0));
    return {
      move: startMove({
        moveType: c.moveType,
        variant: c.variant,
        reason: c.reason,
        sourceNode,
        vmRunning: vmRunning(vm),
        before: c.before,
        after: c.after,
        policy,
        bytesToMove: (c.moveType === 'Live' ? c.before.memoryBytes : 0) + diskBytes,
      }),
    };
  }

  /** An unfinished request for the same VM made before this one, if any. */
  private earlierRequestFor(mr: MoveRequest): string | undefined {
    const mine = [mr.metadata.creationTimestamp ?? '', mr.metadata.name ?? ''];
    return this.d.view.moves
      .list()
      .filter((o) => o.metadata.namespace === mr.metadata.namespace && o.spec.vmName === mr.spec.vmName && o.metadata.uid !== mr.metadata.uid)
      .filter((o) => !(o.status?.phase && isTerminal(o.status.phase)))
      .filter((o) => {
        const theirs = [o.metadata.creationTimestamp ?? '', o.metadata.name ?? ''];
        return theirs[0]! < mine[0]! || (theirs[0] === mine[0] && theirs[1]! < mine[1]!);
      })
      .map((o) => o.metadata.name)[0];
  }

  // ---------------------------------------------------------------- observe

  private async observe(mr: MoveRequest, m: MoveState, now: Date): Promise<Observation> {
    const ctx = contextOf(m);
    const at = now.toISOString();
    const cancelWanted = !!mr.spec.cancel || !!mr.metadata.deletionTimestamp;
    if (cancelWanted && !ctx.cancelRequested) return { event: { type: 'CANCEL', at } };
    const vm = this.d.view.vms.get(vmKeyOf(mr));
    switch (phaseOf(m)) {
      case 'Pending':
        return this.observePending(mr, m, vm, now);
      case 'Scheduling':
        return this.observeScheduling(mr, m, vm, now);
      default: {
        const step = currentStep(m);
        return step ? this.observeStep(mr, m, vm, step, now) : { requeueAfterMs: 5_000 };
      }
    }
  }

  private async observePending(mr: MoveRequest, m: MoveState, vm: VirtualMachine | undefined, now: Date): Promise<Observation> {
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
    const hosts = this.hostsWithReservations(now);
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
    const admission = admitMove(
      { uid: mr.metadata.uid ?? '', source: ctx.sourceNode, moveType: ctx.moveType },
      this.inFlight(),
      this.d.config.limits,
      competition(this.d.view.moves.list(), { vm: (k) => this.d.view.vms.get(k), host: (n) => hosts.find((h) => h.node === n), now }),
    );
    if (!admission.ok) return { waiting: { reason: 'WaitingForLimits', message: admission.reason }, requeueAfterMs: 2_000 };
    // Reserve the slot before awaiting the VM lock: a move admitted meanwhile must count this one.
    const uid = mr.metadata.uid ?? '';
    this.reserved.set(uid, { uid, key: `${mr.metadata.namespace}/${mr.metadata.name}`, vmKey: vmKeyOf(mr), moveType: ctx.moveType, source: ctx.sourceNode, after: ctx.after });
    if (!holder) {
      const locked = await this.lockVm(mr, vm).catch((e: unknown) => {
        this.reserved.delete(uid);
        throw e;
      });
      if (!locked) {
        this.reserved.delete(uid);
        return { requeueAfterMs: 200 };
      }
    }
    return { event: { type: 'START', at, sourceReachable: sourceAlive } };
  }

  private observeScheduling(mr: MoveRequest, m: MoveState, vm: VirtualMachine | undefined, now: Date): Observation {
    const ctx = contextOf(m);
    const at = now.toISOString();
    if (!vm) return { event: { type: 'REJECTED', at, message: `VirtualMachine ${mr.spec.vmName} no longer exists` } };
    const hosts = this.hostsWithReservations(now);
    if (ctx.moveType === 'ResizeInPlace') {
      const host = hosts.find((h) => h.node === ctx.sourceNode);
      const grow = { cpu: Math.max(0, ctx.after.cpu - ctx.before.cpu), memoryBytes: Math.max(0, ctx.after.memoryBytes - ctx.before.memoryBytes) };
      if (host?.agent?.alive && hasRoomToGrow(host, grow)) return { event: { type: 'PLACED', at, targetNode: ctx.sourceNode } };
      return { event: { type: 'REJECTED', at, message: `${ctx.sourceNode} has no room for the VM to grow to ${ctx.after.cpu} CPU / ${ctx.after.memoryBytes} bytes` } };
    }
    const sourceCaps = hosts.find((h) => h.node === ctx.sourceNode)?.agent?.capabilities;
    const inPlaceRebuild = ctx.moveType === 'Rebuild' && mr.spec.target?.nodeName === ctx.sourceNode;
    const result = placeVm(hosts, {
      needs: {
        cpu: ctx.after.cpu,
        memoryBytes: ctx.after.memoryBytes,
        storage: vmStorage(vm),
        liveMigration: ctx.moveType === 'Live',
        blockMigration: ctx.variant === 'BlockMigration',
        driver: sourceCaps?.driver,
      },
      exclude: inPlaceRebuild ? [] : [ctx.sourceNode],
      nodeName: mr.spec.target?.nodeName,
      nodeSelector: mr.spec.target?.nodeSelector,
      inboundLimit: this.d.config.limits.inboundPerNode,
    });
    const placement: Placement = { nodeName: result.nodeName, message: result.message, rejected: result.rejected.length ? result.rejected : undefined };
    if (result.nodeName) {
      const r = this.reserved.get(mr.metadata.uid ?? '');
      this.reserved.set(mr.metadata.uid ?? '', { ...(r ?? { uid: mr.metadata.uid ?? '', key: `${mr.metadata.namespace}/${mr.metadata.name}`, vmKey: vmKeyOf(mr), moveType: ctx.moveType, source: ctx.sourceNode, after: ctx.after }), target: result.nodeName });
      return { event: { type: 'PLACED', at, targetNode: result.nodeName }, placement };
    }
    const since = [...(mr.status?.history ?? [])].reverse().find((h) => h.phase === 'Scheduling')?.startedAt;
    const waited = since ? (now.getTime() - Date.parse(since)) / 1000 : 0;
    if (result.waitable && waited < this.d.config.schedulingWaitSeconds) {
      return { waiting: { reason: 'WaitingForCapacity', message: `waiting up to ${this.d.config.schedulingWaitSeconds} s for moves in flight to free a host: ${result.message}` }, placement, requeueAfterMs: 2_000 };
    }
    return { event: { type: 'REJECTED', at, message: `no host can take the VM: ${result.message}` }, placement };
  }

  private async observeStep(mr: MoveRequest, m: MoveState, vm: VirtualMachine | undefined, step: Step & { key: string }, now: Date): Promise<Observation> {
    const ctx = contextOf(m);
    const at = now.toISOString();
    const node = step.role === 'source' ? ctx.sourceNode : ctx.targetNode;
    const agent = node ? this.d.view.agent(node, now.getTime()) : undefined;
    if (!agent || !agent.alive) {
      if (!agent || agent.expiredForSeconds >= this.d.config.agentLostAfterSeconds) {
        const why = agent ? `its agent's lease expired ${Math.round(agent.expiredForSeconds)} s ago` : 'it has no agent';
        return { event: { type: 'AGENT_LOST', at, role: step.role, message: `${step.role} host ${node}: ${why}` } };
      }
      return { requeueAfterMs: POLL_MS };
    }
    if (!vm) return { event: { type: 'STEP_FAILED', at, step: step.key, message: 'the VirtualMachine object is gone', transient: false } };
    const opId = `${mr.metadata.uid}.${step.key}`;
    let st: OperationStatus;
    try {
      const req = this.request(step, vm, m);
      if (req.kind === 'prepareIncoming') {
        // The target must start with the layout the VM runs with now (hotplugged CPUs and DIMMs).
        const source = this.d.view.agent(ctx.sourceNode);
        const info = source ? (await this.d.agents.listVms(source.endpoint)).find((v) => v.id === req.vm.id) : undefined;
        if (info?.machine) req.vm = { ...req.vm, machine: info.machine };
      }
      st = await this.d.agents.putOperation(agent.endpoint, opId, req, { waitMs: this.d.config.agentWaitMs });
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
        return { event: { type: 'STEP_SUCCEEDED', at, step: step.key, ...(st.endpoint ? { endpoint: st.endpoint } : {}) }, progress };
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
          // The long poll already waited; look again at once.
          requeueAfterMs: RUNNING_POLL_MS,
        };
    }
  }

  /** The operation a step sends: its request with the VM as it should be on that host. */
  private request(step: Step, vm: VirtualMachine, m: MoveState): OperationRequest {
    const ctx = contextOf(m);
    const spec = vmSpecFor(vm, step.resources === 'before' ? ctx.before : ctx.after);
    const req = { ...step.request, vm: spec } as OperationRequest;
    if (req.kind === 'copyDisks' && req.from.endpoint === SOURCE_AGENT) {
      return { ...req, from: { endpoint: this.d.view.agent(ctx.sourceNode)?.endpoint ?? '' } };
    }
    return req;
  }

  // ---------------------------------------------------------------- record

  private async writeStatus(mr: MoveRequest, status: MoveRequestStatus): Promise<MoveRequest> {
    // A whole-status update (not a merge patch): fields the machine dropped must disappear, and
    // the resourceVersion makes it fail rather than overwrite a newer status.
    const path = vmovePath('moverequests', { namespace: mr.metadata.namespace, name: mr.metadata.name, subresource: 'status' });
    try {
      const updated = await this.d.api.replace<MoveRequest>(path, { ...mr, status });
      this.d.view.moves.writeThrough(updated);
      this.lastWrite.set(`${mr.metadata.namespace}/${mr.metadata.name}`, Date.now());
      if (status.phase !== 'Pending') this.reserved.delete(mr.metadata.uid ?? '');
      return updated;
    } catch (e) {
      if (isConflict(e)) await this.refresh(mr);
      throw e;
    }
  }

  private async refresh(mr: MoveRequest): Promise<void> {
    const fresh = await this.d.api.find<MoveRequest>(vmovePath('moverequests', { namespace: mr.metadata.namespace, name: mr.metadata.name }));
    if (fresh) this.d.view.moves.writeThrough(fresh);
  }

  private announce(mr: MoveRequest, before: MoveState, after: MoveState, notes: Note[]): void {
    const phase = phaseOf(after);
    const changed = phase !== phaseOf(before);
    for (const n of notes) this.d.events.record(mr, n.warning ? 'Warning' : 'Normal', phase, n.message);
    if (changed && notes.length === 0) {
      const ctx = contextOf(after);
      const where = phase === 'Succeeded' ? `: ${mr.spec.vmName} runs on ${ctx.targetNode}` : '';
      this.d.events.record(mr, phase === 'Failed' ? 'Warning' : 'Normal', phase, `${phase}${where}`);
    }
    if (changed) this.log.info({ move: `${mr.metadata.namespace}/${mr.metadata.name}`, vm: mr.spec.vmName, from: phaseOf(before), to: phase, attempt: contextOf(after).attempt }, 'phase');
  }

  // ---------------------------------------------------------------- VM lock and finalizer

  /** Take the VM for this move (status.moveRef), only if nobody holds it; false when we lost a race. */
  private async lockVm(mr: MoveRequest, vm: VirtualMachine): Promise<boolean> {
    const path = vmovePath('virtualmachines', { namespace: vm.metadata.namespace, name: vm.metadata.name, subresource: 'status' });
    try {
      const updated = await this.d.api.mergePatch<VirtualMachine>(path, {
        metadata: { resourceVersion: vm.metadata.resourceVersion },
        status: { moveRef: { name: mr.metadata.name, uid: mr.metadata.uid } },
      });
      this.d.view.vms.writeThrough(updated);
      return true;
    } catch (e) {
      if (!isConflict(e)) throw e;
      const fresh = await this.d.api.find<VirtualMachine>(vmovePath('virtualmachines', { namespace: vm.metadata.namespace, name: vm.metadata.name }));
      if (fresh) this.d.view.vms.writeThrough(fresh);
      return false;
    }
  }

  /** A finished request lets its VM go (recording where it runs now) and its finalizer. */
  private async finish(mr: MoveRequest): Promise<void> {
    this.reserved.delete(mr.metadata.uid ?? '');
    const vm = this.d.view.vms.get(vmKeyOf(mr));
    if (vm && vm.status?.moveRef?.uid === mr.metadata.uid) {
      const persisted = mr.status?.machine as unknown as PersistedMove | undefined;
      const succeeded = mr.status?.phase === 'Succeeded' && persisted;
      const moved = succeeded && persisted.type !== 'ResizeInPlace' && mr.status?.targetNode;
      // What the VM runs with now, before its host's next report: the next request starts from it.
      const size = succeeded ? { cpu: persisted.context.after.cpu, memory: formatBytes(persisted.context.after.memoryBytes) } : {};
      const path = vmovePath('virtualmachines', { namespace: vm.metadata.namespace, name: vm.metadata.name, subresource: 'status' });
      try {
        const updated = await this.d.api.mergePatch<VirtualMachine>(path, {
          metadata: { resourceVersion: vm.metadata.resourceVersion },
          status: { moveRef: null, ...size, ...(moved ? { scheduledNode: mr.status?.targetNode, nodeName: mr.status?.targetNode } : {}) },
        });
        this.d.view.vms.writeThrough(updated);
      } catch (e) {
        if (isConflict(e)) {
          const fresh = await this.d.api.find<VirtualMachine>(vmovePath('virtualmachines', { namespace: vm.metadata.namespace, name: vm.metadata.name }));
          if (fresh) this.d.view.vms.writeThrough(fresh);
        }
        throw e;
      }
    }
    if (hasFinalizer(mr)) {
      const path = vmovePath('moverequests', { namespace: mr.metadata.namespace, name: mr.metadata.name });
      try {
        const updated = await this.d.api.mergePatch<MoveRequest>(path, {
          metadata: { resourceVersion: mr.metadata.resourceVersion, finalizers: mr.metadata.finalizers!.filter((f) => f !== MOVE_FINALIZER) },
        });
        this.d.view.moves.writeThrough(updated);
      } catch (e) {
        if (isConflict(e)) await this.refresh(mr);
        throw e;
      }
    }
  }

  private async addFinalizer(mr: MoveRequest): Promise<MoveRequest> {
    const path = vmovePath('moverequests', { namespace: mr.metadata.namespace, name: mr.metadata.name });
    try {
      const updated = await this.d.api.mergePatch<MoveRequest>(path, {
        metadata: { resourceVersion: mr.metadata.resourceVersion, finalizers: [...(mr.metadata.finalizers ?? []), MOVE_FINALIZER] },
      });
      this.d.view.moves.writeThrough(updated);
      return updated;
    } catch (e) {
      if (isConflict(e)) await this.refresh(mr);
      throw e;
    }
  }

  // ---------------------------------------------------------------- limits with reservations

  /** Moves in flight: the cache's, overridden by what this process decided but has not seen come back. */
  private inFlight(): MoveInFlight[] {
    const merged = new Map(this.d.view.movesInFlight().map((m) => [m.uid, m]));
    for (const r of this.reserved.values()) merged.set(r.uid, { ...merged.get(r.uid), ...r, target: r.target ?? merged.get(r.uid)?.target });
    return [...merged.values()];
  }

  /** Host facts counting every move in flight, including those only this process knows of yet. */
  private hostsWithReservations(now: Date): HostFacts[] {
    return this.d.view.hosts(now.getTime(), this.inFlight());
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

