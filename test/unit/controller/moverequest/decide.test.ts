// The move decision is pure: from the facts it answers the machine's next event, or why the move
// waits, and the intents the event needs (hold a slot before awaiting the VM lock, take the VM,
// send the step) — and the event an agent's answer to a step makes.
import { API_VERSION, type Condition, type MoveRequest, type VirtualMachine } from '../../../../src/api/types';
import type { OperationStatus } from '../../../../src/protocol/operations';
import { RUNNING_REQUEUE_MS } from '../../../../src/controller/agentOps';
import type { HostFacts } from '../../../../src/controller/clusterView';
import { decideMove, POLL_MS, readStepAnswer, withLayout, type PutStep } from '../../../../src/controller/moverequest/decide';
import type { MoveFacts } from '../../../../src/controller/moverequest/facts';
import { advance, contextOf, startMove, type MoveState } from '../../../../src/machines';
import { scenario, SOURCE, TARGET } from '../../machines/scenarios';
import { host } from '../hostFacts';

const NOW = new Date('2030-01-01T00:00:00Z');
const at = NOW.toISOString();

const vm = (o: Partial<NonNullable<VirtualMachine['status']>> = {}): VirtualMachine => ({
  apiVersion: API_VERSION,
  kind: 'VirtualMachine',
  metadata: { name: 'db', namespace: 'default', uid: 'vm-uid' },
  spec: { image: 'debian', cpu: 2, memory: '2Gi', disks: [{ name: 'root', size: '1Gi', storage: 'SharedFile' }] },
  status: { nodeName: SOURCE, phase: 'Running', ...o },
});

const request = (o: Partial<MoveRequest['spec']> = {}): MoveRequest => ({
  apiVersion: API_VERSION,
  kind: 'MoveRequest',
  metadata: { name: 'move-1', namespace: 'default', uid: 'mr-uid' },
  spec: { vmName: 'db', ...o },
});

function facts(hosts: HostFacts[], o: Partial<MoveFacts> = {}): MoveFacts {
  return {
    now: NOW,
    vm: vm(),
    hosts: () => hosts,
    inFlight: () => [],
    competition: () => ({ waiting: [], groupOf: new Map() }),
    agent: (node) => hosts.find((h) => h.node === node)?.agent,
    fenced: (node) => !!hosts.find((h) => h.node === node)?.fenced,
    config: { limits: { parallelMoves: 5, outboundPerNode: 2, inboundPerNode: 2 }, schedulingWaitSeconds: 300, agentLostAfterSeconds: 5, priorityAgingSeconds: 120 },
    ...o,
  };
}

const live = (): MoveState => startMove(scenario({ type: 'Live', variant: 'SharedStorage', vmRunning: true }).input);
const rebuild = (): MoveState => startMove(scenario({ type: 'Rebuild', variant: 'FromSharedDisk', vmRunning: true, sourceReachable: false }).input);
const scheduling = (m: MoveState): MoveState => advance(m, { type: 'START', at, sourceReachable: true }).state;
const preparingTarget = (): MoveState => advance(scheduling(live()), { type: 'PLACED', at, targetNode: TARGET }).state;

const guestReady = (status: Condition['status'], reason: string, since: string): Condition => ({ type: 'GuestReady', status, reason, message: '', lastTransitionTime: since });
const secondsBefore = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString();

describe('Pending: what the source shows of the guest', () => {
  test('a ready guest: START records it, with the heartbeat its host last reported', () => {
    const ready = vm({ conditions: [guestReady('True', 'Heartbeat', secondsBefore(300))], guest: { heartbeat: 290, heartbeatTime: secondsBefore(10) } });
    const d = decideMove(request(), live(), facts([host(SOURCE), host(TARGET)], { vm: ready }));
    expect(d.event).toMatchObject({ type: 'START', sourceGuest: { state: 'Ready', reason: 'Heartbeat', heartbeat: 290, heartbeatTime: secondsBefore(10) } });
  });

  test('a guest still booting: the live move waits in Pending, saying so, touching nothing', () => {
    const booting = vm({ conditions: [guestReady('False', 'Booting', secondsBefore(2))] });
    const d = decideMove(request(), live(), facts([host(SOURCE), host(TARGET)], { vm: booting }));
    expect(d.event).toBeUndefined();
    expect(d.intents).toEqual([]);
    expect(d.waiting).toEqual({ reason: 'GuestBooting', message: `the guest on ${SOURCE} is still booting: the live move waits for its first heartbeat, until ${new Date(NOW.getTime() + 118_000).toISOString()} at the latest` });
  });

  test('a guest that has booted for longer than the boot wait: the move goes ahead, recording it was not ready and how long it waited', () => {
    const booting = vm({ conditions: [guestReady('False', 'Booting', secondsBefore(125))] });
    const waited: MoveRequest = {
      ...request(),
      status: { history: [{ phase: 'Pending', startedAt: secondsBefore(120), attempt: 1 }], conditions: [{ type: 'Progressing', status: 'False', reason: 'GuestBooting', message: '', lastTransitionTime: secondsBefore(120) }] },
    };
    const d = decideMove(waited, live(), facts([host(SOURCE), host(TARGET)], { vm: booting }));
    expect(d.event).toMatchObject({ type: 'START', sourceGuest: { state: 'NotReady', reason: 'Booting', waitedSeconds: 120 } });
  });

  test('a guest its host cannot see, or one whose heartbeat stopped: no wait, recorded as such', () => {
    const unseen = vm({ conditions: [guestReady('Unknown', 'NotObservable', secondsBefore(5))] });
    expect(decideMove(request(), live(), facts([host(SOURCE), host(TARGET)], { vm: unseen })).event).toMatchObject({ sourceGuest: { state: 'Unknown', reason: 'NotObservable' } });
    const stalled = vm({ conditions: [guestReady('False', 'HeartbeatStopped', secondsBefore(5))] });
    expect(decideMove(request(), live(), facts([host(SOURCE), host(TARGET)], { vm: stalled })).event).toMatchObject({ sourceGuest: { state: 'NotReady', reason: 'HeartbeatStopped' } });
  });

  test('a cold move does not wait for the guest: it boots again on the target anyway', () => {
    const cold = startMove(scenario({ type: 'Cold', variant: 'SharedStorage', vmRunning: true }).input);
    const booting = vm({ conditions: [guestReady('False', 'Booting', secondsBefore(2))] });
    const d = decideMove(request(), cold, facts([host(SOURCE), host(TARGET)], { vm: booting }));
    expect(d.event).toEqual({ type: 'START', at, sourceReachable: true });
  });
});

describe('Pending', () => {
  test('a cancel asked for comes first', () => {
    expect(decideMove(request({ cancel: true }), live(), facts([host(SOURCE), host(TARGET)]))).toEqual({ event: { type: 'CANCEL', at }, intents: [] });
  });

  test('admitted: START, holding the slot before taking the VM', () => {
    const d = decideMove(request(), live(), facts([host(SOURCE), host(TARGET)]));
    // A VM whose host never reported its guest: the source showed nothing to hold the target to.
    expect(d.event).toEqual({ type: 'START', at, sourceReachable: true, sourceGuest: { state: 'Unknown', reason: 'NotReported' } });
    expect(d.intents.map((i) => i.kind)).toEqual(['holdSlot', 'lockVm']);
    expect(d.intents[0]).toMatchObject({ slot: { uid: 'mr-uid', key: 'default/move-1', vmKey: 'default/db', moveType: 'Live', source: SOURCE } });
    expect(d.intents[0]).not.toHaveProperty('slot.target');
  });

  test('a VM this request already holds is not taken again', () => {
    const d = decideMove(request(), live(), facts([host(SOURCE), host(TARGET)], { vm: vm({ moveRef: { name: 'move-1', uid: 'mr-uid' } }) }));
    expect(d.intents.map((i) => i.kind)).toEqual(['holdSlot']);
  });

  test('a VM another request holds: wait, touching nothing', () => {
    const d = decideMove(request(), live(), facts([host(SOURCE), host(TARGET)], { vm: vm({ moveRef: { name: 'other', uid: 'x' } }) }));
    expect(d).toMatchObject({ waiting: { reason: 'WaitingForVM' }, requeueAfterMs: 5_000, intents: [] });
  });

  test('the limits full: wait for a slot', () => {
    const busy = [1, 2, 3, 4, 5].map((n) => ({ uid: `u${n}`, key: `default/m${n}`, vmKey: `default/v${n}`, moveType: 'Live' as const, source: `n${n}`, target: `t${n}`, after: { cpu: 1, memoryBytes: 1 } }));
    const d = decideMove(request(), live(), facts([host(SOURCE), host(TARGET)], { inFlight: () => busy }));
    expect(d).toMatchObject({ waiting: { reason: 'WaitingForLimits' }, requeueAfterMs: 2_000, intents: [] });
  });

  test('a dead source: a live move waits for it; a rebuild waits for the fence, then starts without it', () => {
    const dead = host(SOURCE, { alive: false });
    expect(decideMove(request(), live(), facts([dead, host(TARGET)]))).toMatchObject({ waiting: { reason: 'SourceUnreachable' }, intents: [] });
    expect(decideMove(request(), rebuild(), facts([dead, host(TARGET)]))).toMatchObject({ waiting: { reason: 'SourceNotFenced' }, intents: [] });
    const d = decideMove(request(), rebuild(), facts([{ ...dead, fenced: true }, host(TARGET)]));
    expect(d.event).toEqual({ type: 'START', at, sourceReachable: false });
  });

  test('the VM gone: REJECTED', () => {
    expect(decideMove(request(), live(), facts([host(SOURCE)], { vm: undefined })).event).toMatchObject({ type: 'REJECTED' });
  });
});

describe('Scheduling', () => {
  test('placed: PLACED, holding the target too', () => {
    const d = decideMove(request(), scheduling(live()), facts([host(SOURCE), host(TARGET)]));
    expect(d.event).toEqual({ type: 'PLACED', at, targetNode: TARGET });
    expect(d.placement?.nodeName).toBe(TARGET);
    expect(d.intents).toEqual([{ kind: 'holdSlot', slot: expect.objectContaining({ uid: 'mr-uid', target: TARGET }) }]);
  });

  test('a resize in place fits where it is, holding nothing', () => {
    const resize = startMove(scenario({ type: 'ResizeInPlace', variant: 'Hotplug', vmRunning: true }).input);
    expect(decideMove(request(), scheduling(resize), facts([host(SOURCE)]))).toEqual({ event: { type: 'PLACED', at, targetNode: SOURCE }, intents: [] });
  });
});

describe('a step', () => {
  test('sends the step to its host, the layout asked of the source first', () => {
    const d = decideMove(request(), preparingTarget(), facts([host(SOURCE), host(TARGET)]));
    expect(d.event).toBeUndefined();
    expect(d.intents).toHaveLength(1);
    expect(d.intents[0]).toMatchObject({ kind: 'putStep', node: TARGET, endpoint: `http://127.0.0.1/${TARGET}`, layoutFrom: { node: SOURCE, endpoint: `http://127.0.0.1/${SOURCE}` }, request: { kind: 'prepareIncoming' }, at });
    expect((d.intents[0] as PutStep).opId).toBe(`mr-uid.${(d.intents[0] as PutStep).step.key}`);
  });

  test('its host down a moment: look again, sending nothing; gone for good: AGENT_LOST', () => {
    const down = host(TARGET, { alive: false });
    const moment = { ...down, agent: { ...down.agent!, expiredForSeconds: 1 } };
    expect(decideMove(request(), preparingTarget(), facts([host(SOURCE), moment]))).toEqual({ requeueAfterMs: POLL_MS, intents: [] });
    expect(decideMove(request(), preparingTarget(), facts([host(SOURCE), down])).event).toMatchObject({ type: 'AGENT_LOST', role: 'target' });
  });
});

describe('the answer to a step', () => {
  const put = (): PutStep => decideMove(request(), preparingTarget(), facts([host(SOURCE), host(TARGET)])).intents[0] as PutStep;
  const ctx = contextOf(preparingTarget());

  test('a refusal fails the step for good; no answer keeps the clock running', () => {
    expect(readStepAnswer(put(), ctx, { refused: 'bad body' }).event).toMatchObject({ type: 'STEP_FAILED', transient: false, message: `the agent of ${TARGET} refused prepareIncoming: bad body` });
    expect(readStepAnswer(put(), ctx, { unreachable: 'ECONNREFUSED' })).toMatchObject({ event: { type: 'PROGRESS', processedBytes: 0 }, requeueAfterMs: POLL_MS });
  });

  test('Running is progress, looked at again at once; Succeeded and Failed say so', () => {
    const running: OperationStatus = { opId: 'x', kind: 'prepareIncoming', state: 'Running', startedAt: at };
    expect(readStepAnswer(put(), ctx, { answer: running })).toMatchObject({ event: { type: 'PROGRESS' }, requeueAfterMs: RUNNING_REQUEUE_MS });
    expect(readStepAnswer(put(), ctx, { answer: { ...running, state: 'Succeeded' } }).event).toMatchObject({ type: 'STEP_SUCCEEDED' });
    expect(readStepAnswer(put(), ctx, { answer: { ...running, state: 'Failed', error: { message: 'no', transient: true } } }).event).toMatchObject({ type: 'STEP_FAILED', transient: true });
  });

  test('the layout the source reports goes into prepareIncoming', () => {
    const p = put();
    const machine = '{"cpus":4}';
    const withIt = withLayout(p.request, [{ id: p.request.vm.id, uid: 'vm-uid', state: 'Running', cpu: 2, memoryBytes: 1, machine }]);
    expect(withIt.vm).toMatchObject({ machine });
    expect(withLayout(p.request, [])).toBe(p.request);
  });
});
