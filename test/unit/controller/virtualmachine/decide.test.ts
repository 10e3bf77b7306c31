// A VirtualMachine's decisions are pure: one step at a time from its facts — place it (then look
// again), say its host is lost or reachable, have its host create, start or stop it, or remove it
// when it is deleted — and what an operation's answer means.
import { API_VERSION, type VirtualMachine } from '../../../../src/api/types';
import type { OperationStatus } from '../../../../src/protocol/operations';
import { RUNNING_REQUEUE_MS } from '../../../../src/controller/agentOps';
import type { HostFacts } from '../../../../src/controller/clusterView';
import { decideVm, decideVmDeletion, readVmDeletion, readVmOperation, type VmOperation } from '../../../../src/controller/virtualmachine/decide';
import type { VmFacts } from '../../../../src/controller/virtualmachine/facts';
import { host } from '../hostFacts';

const NOW = new Date('2030-01-01T00:00:00Z');
const reachable = [{ type: 'HostReachable', status: 'True' as const, reason: 'AgentAlive', message: 'the agent of a is alive', lastTransitionTime: NOW.toISOString() }];

const vm = (status: VirtualMachine['status'] = {}, spec: Partial<VirtualMachine['spec']> = {}): VirtualMachine => ({
  apiVersion: API_VERSION,
  kind: 'VirtualMachine',
  metadata: { name: 'db', namespace: 'default', uid: 'vm-uid', generation: 3 },
  spec: { image: 'debian', cpu: 1, memory: '1Gi', disks: [{ name: 'root', size: '1Gi', storage: 'Local' }], ...spec },
  status,
});

function facts(hosts: HostFacts[], o: Partial<VmFacts> = {}): VmFacts {
  return {
    now: NOW,
    heldByMove: false,
    hosts: () => hosts,
    agent: (node) => hosts.find((h) => h.node === node)?.agent,
    hasNode: (node) => hosts.some((h) => h.node === node),
    config: { agentLostAfterSeconds: 5 },
    ...o,
  };
}

const status = (state: OperationStatus['state'], error?: string): OperationStatus => ({
  opId: 'x',
  kind: 'ensureVm',
  state,
  startedAt: NOW.toISOString(),
  ...(error ? { error: { message: error, transient: false } } : {}),
});

describe('a living VM', () => {
  test('held by a move: nothing; held by a move that is gone: released', () => {
    const held = vm({ moveRef: { name: 'm', uid: 'u' } });
    expect(decideVm(held, facts([host('a')], { heldByMove: true }))).toEqual({});
    expect(decideVm(held, facts([host('a')]))).toMatchObject({ status: { moveRef: null }, event: { reason: 'StaleMoveRef' }, requeueAfterMs: 0 });
  });

  test('not placed: placed and recorded, then looked at again', () => {
    const d = decideVm(vm(), facts([host('a')]));
    expect(d).toMatchObject({ status: { scheduledNode: 'a', phase: 'Pending' }, event: { type: 'Normal', reason: 'Scheduled' }, again: true });
  });

  test('nowhere to go: said once, then only looked at again', () => {
    const d = decideVm(vm({}, { cpu: 64 }), facts([host('a')]));
    expect(d).toMatchObject({ status: { phase: 'Pending' }, event: { reason: 'Unschedulable' }, requeueAfterMs: 10_000 });
    expect(decideVm(vm({ conditions: d.status!.conditions! }, { cpu: 64 }), facts([host('a')]))).toEqual({ requeueAfterMs: 10_000 });
  });

  test('its host lost: Lost once; down a moment: wait', () => {
    const dead = host('a', { alive: false });
    expect(decideVm(vm({ scheduledNode: 'a' }), facts([dead]))).toMatchObject({ status: { phase: 'Lost' }, event: { reason: 'Lost' }, requeueAfterMs: 5_000 });
    expect(decideVm(vm({ scheduledNode: 'a', phase: 'Lost' }), facts([dead]))).toEqual({ requeueAfterMs: 5_000 });
    const moment = { ...dead, agent: { ...dead.agent!, expiredForSeconds: 1 } };
    expect(decideVm(vm({ scheduledNode: 'a' }), facts([moment]))).toEqual({ requeueAfterMs: 5_000 });
  });

  test('its host back: reachable recorded (Lost → Pending), then looked at again', () => {
    expect(decideVm(vm({ scheduledNode: 'a', phase: 'Lost' }), facts([host('a')]))).toMatchObject({ status: { phase: 'Pending', conditions: [{ type: 'HostReachable', status: 'True' }] }, again: true });
  });

  test('placed, not reported by its host: created there; stopped but wanted running: started; the reverse: stopped', () => {
    expect(decideVm(vm({ scheduledNode: 'a', conditions: reachable }), facts([host('a')])).operate).toMatchObject({
      node: 'a',
      opId: 'vm-uid.create.a',
      request: { kind: 'ensureVm', disks: 'keep', start: true },
      succeeded: { reason: 'Created', message: 'defined on a and started' },
    });
    const on = { scheduledNode: 'a', nodeName: 'a', conditions: reachable };
    expect(decideVm(vm({ ...on, phase: 'Stopped' }), facts([host('a')])).operate).toMatchObject({ opId: 'vm-uid.start.3', request: { kind: 'startVm' } });
    expect(decideVm(vm({ ...on, phase: 'Running' }, { running: false }), facts([host('a')])).operate).toMatchObject({ opId: 'vm-uid.stop.3', request: { kind: 'stopVm' } });
    expect(decideVm(vm({ ...on, phase: 'Running' }), facts([host('a')]))).toEqual({ status: { observedGeneration: 3 } });
    expect(decideVm(vm({ ...on, phase: 'Running', observedGeneration: 3 }), facts([host('a')]))).toEqual({});
  });
});

describe("an operation's answer", () => {
  const op = decideVm(vm({ scheduledNode: 'a', conditions: reachable }), facts([host('a')])).operate!;

  test('no answer or a refusal: ask again; running: the follow of the operation wakes it (a late look is only a backstop)', () => {
    expect(readVmOperation(vm(), op, { unreachable: 'down' }, NOW)).toEqual({ requeueAfterMs: 2_000 });
    expect(readVmOperation(vm(), op, { refused: 'no' }, NOW)).toEqual({ requeueAfterMs: 2_000 });
    expect(readVmOperation(vm(), op, { answer: status('Running') }, NOW)).toEqual({ requeueAfterMs: RUNNING_REQUEUE_MS });
  });

  test('failed: said once (a failed create fails the VM); succeeded: recovered and recorded', () => {
    const failed = readVmOperation(vm(), op, { answer: status('Failed', 'disk full') }, NOW);
    expect(failed).toMatchObject({ status: { phase: 'Failed' }, event: { type: 'Warning', message: 'ensureVm failed: disk full' }, requeueAfterMs: 30_000 });
    expect(readVmOperation(vm({ conditions: failed.status!.conditions! }), op, { answer: status('Failed', 'disk full') }, NOW)).toEqual({ requeueAfterMs: 30_000 });
    const ok = readVmOperation(vm({ conditions: failed.status!.conditions! }), op, { answer: status('Succeeded') }, NOW);
    expect(ok).toMatchObject({ status: { conditions: [{ type: 'Failed', status: 'False', reason: 'Recovered' }] }, event: { reason: 'Created' }, requeueAfterMs: 2_000 });
  });
});

describe('a VM being deleted', () => {
  test('held by a move: wait; never placed: let go', () => {
    expect(decideVmDeletion(vm({ moveRef: { name: 'm', uid: 'u' } }), facts([], { heldByMove: true }))).toEqual({ requeueAfterMs: 2_000 });
    expect(decideVmDeletion(vm(), facts([]))).toEqual({ released: true });
  });

  test('its host alive: removed there; then let go, or told how to give up', () => {
    const d = decideVmDeletion(vm({ nodeName: 'a' }), facts([host('a')]));
    expect(d.operate).toMatchObject({ opId: 'vm-uid.delete', request: { kind: 'deleteVm', deleteLocalDisks: true, deleteSharedDisks: true } });
    const op: VmOperation = d.operate!;
    expect(readVmDeletion(op, { answer: status('Succeeded') }, 'f')).toEqual({ released: true });
    expect(readVmDeletion(op, { unreachable: 'x' }, 'f')).toEqual({ requeueAfterMs: 2_000 });
    expect(readVmDeletion(op, { answer: status('Failed', 'busy') }, 'f')).toMatchObject({ event: { reason: 'DeleteFailed', message: 'could not remove the VM from a: busy; remove the finalizer f to give up' }, requeueAfterMs: 30_000 });
  });

  test('its host unreachable: wait for it (or its fence); fenced or gone: let go', () => {
    const dead = host('a', { alive: false });
    expect(decideVmDeletion(vm({ nodeName: 'a' }), facts([dead]))).toMatchObject({ event: { reason: 'HostUnreachable' }, requeueAfterMs: 10_000 });
    expect(decideVmDeletion(vm({ nodeName: 'a' }), facts([{ ...dead, fenced: true }]))).toMatchObject({ event: { reason: 'HostGone' }, released: true });
    expect(decideVmDeletion(vm({ nodeName: 'a' }), facts([]))).toMatchObject({ event: { reason: 'HostGone' }, released: true });
  });
});
