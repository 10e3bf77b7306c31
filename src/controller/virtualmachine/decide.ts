// What to do next with a VirtualMachine outside moves, from its facts (facts.ts): place it, say
// its host is lost (or reachable again), have its host create, start or stop it — or, deleting it,
// have its host remove it. One step per decision; the reconciler writes it and, when the decision
// says so, decides again over the VM as written. Pure.
import type { VirtualMachine, VirtualMachineStatus } from '../../api/types';
import type { OperationRequest, OperationStatus } from '../../protocol/operations';
import type { EventType } from '../../kube/events';
import { RUNNING_REQUEUE_MS, type AgentAnswer } from '../agentOps';
import { currentResources, vmRunning, vmStorage } from '../chooseMove';
import { findCondition, setCondition, type ConditionInput } from '../conditions';
import { placeVm } from '../placement';
import { vmSpecFor } from '../vmSpec';
import type { VmFacts } from './facts';

/** A merge patch of the status: `null` removes a field. */
export type VmStatusPatch = { [K in keyof VirtualMachineStatus]?: VirtualMachineStatus[K] | null };

export interface VmEvent {
  type: EventType;
  reason: string;
  message: string;
}

/** An operation for the VM's host (`node`), and the Event its success records. */
export interface VmOperation {
  node: string;
  endpoint: string;
  opId: string;
  request: OperationRequest;
  succeeded?: VmEvent;
}

export interface VmDecision {
  /** Written first, under the VM's resourceVersion. */
  status?: VmStatusPatch;
  event?: VmEvent;
  /** Then decide again at once, over the VM as written (it was placed, or its host's reachability recorded). */
  again?: boolean;
  /** Then send this operation; its answer decides the rest. */
  operate?: VmOperation;
  /** Deleting: nothing is left on a host to remove; the finalizer may go. */
  released?: boolean;
  requeueAfterMs?: number;
}

const specOf = (vm: VirtualMachine) => vmSpecFor(vm, currentResources(vm));
const cond = (vm: VirtualMachine, c: ConditionInput, now: Date) => setCondition(vm.status?.conditions, c, now.toISOString(), vm.metadata.generation);

export function decideVm(vm: VirtualMachine, f: VmFacts): VmDecision {
  const ref = vm.status?.moveRef;
  if (ref) {
    if (f.heldByMove) return {};
    // A lock whose MoveRequest is gone (removed without its finalizer) must not hold the VM forever.
    return { status: { moveRef: null }, event: { type: 'Warning', reason: 'StaleMoveRef', message: `MoveRequest ${ref.name} no longer exists; the VM is released` }, requeueAfterMs: 0 };
  }
  const node = vm.status?.scheduledNode;
  if (!node) return place(vm, f);

  const agent = f.agent(node);
  if (!agent?.alive) {
    const lost = !agent || agent.expiredForSeconds >= f.config.agentLostAfterSeconds;
    if (!lost || vm.status?.phase === 'Lost') return { requeueAfterMs: 5_000 };
    const message = agent ? `the agent of ${node} stopped renewing its lease ${Math.round(agent.expiredForSeconds)} s ago: the VM's state is unknown` : `${node} has no vmove agent`;
    return {
      status: { phase: 'Lost', conditions: cond(vm, { type: 'HostReachable', status: 'False', reason: 'AgentLost', message }, f.now) },
      event: { type: 'Warning', reason: 'Lost', message },
      requeueAfterMs: 5_000,
    };
  }
  if (findCondition(vm.status?.conditions, 'HostReachable')?.status !== 'True') {
    return {
      status: {
        ...(vm.status?.phase === 'Lost' ? { phase: 'Pending' } : {}),
        conditions: cond(vm, { type: 'HostReachable', status: 'True', reason: 'AgentAlive', message: `the agent of ${node} is alive` }, f.now),
      },
      again: true,
    };
  }

  const want = vmRunning(vm);
  const uid = vm.metadata.uid ?? '';
  const gen = vm.metadata.generation ?? 1;
  const operate = (opId: string, request: OperationRequest, reason: string, message: string): VmDecision => ({
    operate: { node, endpoint: agent.endpoint, opId, request, succeeded: { type: 'Normal', reason, message } },
  });
  // Not reported by its host yet: (re)create it there. ensureVm is idempotent per opId.
  if (vm.status?.nodeName !== node) {
    return operate(`${uid}.create.${node}`, { kind: 'ensureVm', vm: specOf(vm), disks: 'keep', start: want }, 'Created', `defined on ${node}${want ? ' and started' : ''}`);
  }
  const phase = vm.status?.phase;
  if (want && phase === 'Stopped') return operate(`${uid}.start.${gen}`, { kind: 'startVm', vm: specOf(vm) }, 'Started', `started on ${node}`);
  if (!want && (phase === 'Running' || phase === 'Pending')) return operate(`${uid}.stop.${gen}`, { kind: 'stopVm', vm: specOf(vm) }, 'Stopped', `stopped on ${node}`);
  if (vm.status?.observedGeneration !== gen) return { status: { observedGeneration: gen } };
  return {};
}

/** Choose the VM's host and record it before any agent acts, so a restart cannot place it twice. */
function place(vm: VirtualMachine, f: VmFacts): VmDecision {
  const res = currentResources(vm);
  const result = placeVm(f.hosts(), {
    needs: { cpu: res.cpu, memoryBytes: res.memoryBytes, storage: vmStorage(vm) },
    nodeName: vm.spec.nodeName,
    inboundLimit: Number.POSITIVE_INFINITY,
  });
  if (!result.nodeName) {
    if (findCondition(vm.status?.conditions, 'Scheduled')?.message === result.message) return { requeueAfterMs: 10_000 };
    return {
      status: { phase: 'Pending', conditions: cond(vm, { type: 'Scheduled', status: 'False', reason: 'Unschedulable', message: result.message }, f.now) },
      event: { type: 'Warning', reason: 'Unschedulable', message: result.message },
      requeueAfterMs: 10_000,
    };
  }
  return {
    status: { scheduledNode: result.nodeName, phase: 'Pending', conditions: cond(vm, { type: 'Scheduled', status: 'True', reason: 'Scheduled', message: `placed on ${result.nodeName}` }, f.now) },
    event: { type: 'Normal', reason: 'Scheduled', message: `placed on ${result.nodeName}` },
    again: true,
  };
}

/** What an operation's answer means for the VM. */
export function readVmOperation(vm: VirtualMachine, op: VmOperation, a: AgentAnswer<OperationStatus>, now: Date): VmDecision {
  if (!('answer' in a)) return { requeueAfterMs: 2_000 };
  const st = a.answer;
  if (st.state === 'Running') return { requeueAfterMs: RUNNING_REQUEUE_MS };
  const kind = op.request.kind;
  if (st.state === 'Failed') {
    const message = `${kind} failed: ${st.error?.message ?? 'unknown error'}`;
    if (findCondition(vm.status?.conditions, 'Failed')?.message === message) return { requeueAfterMs: 30_000 };
    return {
      status: { ...(kind === 'ensureVm' ? { phase: 'Failed' } : {}), conditions: cond(vm, { type: 'Failed', status: 'True', reason: `${kind}Failed`, message }, now) },
      event: { type: 'Warning', reason: 'Failed', message },
      requeueAfterMs: 30_000,
    };
  }
  const recovered = findCondition(vm.status?.conditions, 'Failed')?.status === 'True';
  return {
    ...(recovered ? { status: { conditions: cond(vm, { type: 'Failed', status: 'False', reason: 'Recovered', message: '' }, now) } } : {}),
    ...(op.succeeded ? { event: op.succeeded } : {}),
    // The agent reports the new state; look again soon in case its report is slow.
    requeueAfterMs: 2_000,
  };
}

/** Deleting: wait for a move that holds the VM, have its host remove it, or let it go when the host is gone. */
export function decideVmDeletion(vm: VirtualMachine, f: VmFacts): VmDecision {
  if (vm.status?.moveRef && f.heldByMove) return { requeueAfterMs: 2_000 };
  const node = vm.status?.nodeName ?? vm.status?.scheduledNode;
  if (!node) return { released: true };
  const agent = f.agent(node);
  if (agent?.alive) {
    const request: OperationRequest = { kind: 'deleteVm', vm: specOf(vm), deleteLocalDisks: true, deleteSharedDisks: true };
    return { operate: { node, endpoint: agent.endpoint, opId: `${vm.metadata.uid}.delete`, request } };
  }
  const host = f.hosts().find((h) => h.node === node);
  if (host && !host.fenced && f.hasNode(node)) {
    return { event: { type: 'Warning', reason: 'HostUnreachable', message: `waiting for the agent of ${node} to remove the VM (or for the node to be fenced or deleted)` }, requeueAfterMs: 10_000 };
  }
  return { event: { type: 'Warning', reason: 'HostGone', message: `${node} is gone: whatever the VM left there is not cleaned up` }, released: true };
}

/** What the answer to the deleting operation means: removed (let go), not yet, or failed (say how to give up). */
export function readVmDeletion(op: VmOperation, a: AgentAnswer<OperationStatus>, finalizer: string): VmDecision {
  if (!('answer' in a)) return { requeueAfterMs: 2_000 };
  const st = a.answer;
  if (st.state === 'Running') return { requeueAfterMs: RUNNING_REQUEUE_MS };
  if (st.state === 'Failed') {
    return {
      event: { type: 'Warning', reason: 'DeleteFailed', message: `could not remove the VM from ${op.node}: ${st.error?.message}; remove the finalizer ${finalizer} to give up` },
      requeueAfterMs: 30_000,
    };
  }
  return { released: true };
}
