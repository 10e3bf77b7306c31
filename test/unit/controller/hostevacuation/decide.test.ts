import type { HostEvacuation, HostEvacuationStatus } from '../../../../src/api/types';
import type { HostFacts } from '../../../../src/controller/clusterView';
import { decideEvacuation } from '../../../../src/controller/hostevacuation/decide';
import type { EvacuationFacts } from '../../../../src/controller/hostevacuation/types';
import { CANCELLED_BY_ANNOTATION } from '../../../../src/controller/hostevacuation/names';
import { evacuation, GiB, host, ownedMove, vm } from './fixtures';

const NOW = new Date('2030-01-01T00:10:00Z');

function facts(o: Partial<EvacuationFacts> = {}): EvacuationFacts {
  return {
    evacuation: evacuation(),
    now: NOW,
    node: { exists: true, unschedulable: false },
    host: host('a'),
    hosts: [host('a'), host('b'), host('c')],
    vms: [],
    moves: [],
    cordonWantedByOthers: false,
    deadHostAfterSeconds: 40,
    ...o,
  };
}

/** The evacuation as the next reconcile sees it: with the status just written. */
const after = (e: HostEvacuation, status: HostEvacuationStatus): HostEvacuation => ({ ...e, status });
const cond = (s: HostEvacuationStatus, type: string) => s.conditions?.find((c) => c.type === type);
const deadHost = (o: { fenced?: boolean; ready?: boolean } = {}): HostFacts => {
  const h = host('a', { fenced: o.fenced ?? false, ready: o.ready ?? false });
  return { ...h, agent: { ...h.agent!, alive: false, expiredForSeconds: 120 } };
};

describe('live host', () => {
  const vms = ['v1', 'v2', 'v3'].map((n) => vm(n));

  test('first look: records the cordon, cordons, creates maxParallel moves in plan order, and counts', () => {
    const d = decideEvacuation(facts({ vms }));
    expect(d.actions.node).toBe('cordon');
    expect(cond(d.status, 'Cordoned')).toMatchObject({ status: 'True', reason: 'CordonedByVmove' });
    expect(d.actions.create.map((m) => [m.name, m.attempt, m.spec])).toEqual([
      ['drain-a-v1-1', 1, { vmName: 'v1', mode: 'Auto', priority: 'Maintenance', target: { nodeName: 'b' } }],
      ['drain-a-v2-1', 1, { vmName: 'v2', mode: 'Auto', priority: 'Maintenance', target: { nodeName: 'c' } }],
    ]);
    expect(d.status).toMatchObject({ phase: 'Evacuating', hostState: 'Alive', total: 3, succeeded: 0, inProgress: 0, pending: 3, failed: 0 });
    expect(d.status.moves!.map((m) => [m.vmName, m.name, m.phase, m.targetNode, m.moveType])).toEqual([
      ['v1', 'drain-a-v1-1', 'Pending', 'b', 'Live'],
      ['v2', 'drain-a-v2-1', 'Pending', 'c', 'Live'],
    ]);
    // The VM not started yet shows in the plan: where it would go now.
    expect(d.status.plan).toEqual([expect.objectContaining({ vmName: 'v3', order: 1, targetNode: 'b', moveType: 'Live' })]);
    expect(d.events.map((e) => e.reason)).toEqual(['Cordoned']);
    expect(d.actions.create[0]!.events).toEqual([{ type: 'Normal', reason: 'MoveCreated', message: 'default/v1: Live (SharedStorage) to b as MoveRequest drain-a-v1-1' }]);
  });

  test('never more than maxParallel unfinished moves; a slot that frees goes to the next VM', () => {
    const e = evacuation({ maxParallel: 2 }, { status: { phase: 'Evacuating' } });
    const running = [ownedMove('v1', 1, { phase: 'Migrating', target: 'b' }), ownedMove('v2', 1, { phase: 'Pending', target: 'c' })];
    expect(decideEvacuation(facts({ evacuation: e, vms, moves: running })).actions.create).toEqual([]);
    const oneDone = [ownedMove('v1', 1, { phase: 'Succeeded', target: 'b' }), running[1]!];
    const d = decideEvacuation(facts({ evacuation: e, vms: [vm('v1', { node: 'b' }), vms[1]!, vms[2]!], moves: oneDone }));
    expect(d.actions.create.map((m) => m.name)).toEqual(['drain-a-v3-1']);
    expect(d.status).toMatchObject({ succeeded: 1, inProgress: 0, pending: 2, total: 3 });
  });

  test('a move verifying on its target no longer counts against maxParallel: the next VM streams meanwhile', () => {
    const e = evacuation({ maxParallel: 2 }, { status: { phase: 'Evacuating' } });
    const moves = [ownedMove('v1', 1, { phase: 'Verifying', target: 'b' }), ownedMove('v2', 1, { phase: 'Migrating', target: 'c' })];
    const d = decideEvacuation(facts({ evacuation: e, vms: [vm('v1', { node: 'b' }), vms[1]!, vms[2]!], moves }));
    expect(d.actions.create.map((m) => m.name)).toEqual(['drain-a-v3-1']);
  });

  test('the node empty: Succeeded, Ready, and the message says how they left and that the node stays cordoned', () => {
    const e = evacuation({}, { status: { phase: 'Evacuating', conditions: [{ type: 'Cordoned', status: 'True', reason: 'CordonedByVmove', message: '', lastTransitionTime: '2030-01-01T00:00:00Z' }] } });
    const moves = [ownedMove('v1', 1, { phase: 'Succeeded', target: 'b', moveType: 'Live' }), ownedMove('v2', 1, { phase: 'Succeeded', target: 'c', moveType: 'Cold' })];
    const d = decideEvacuation(facts({ evacuation: e, node: { exists: true, unschedulable: true }, vms: [vm('v1', { node: 'b' }), vm('v2', { node: 'c' })], moves }));
    expect(d.status.phase).toBe('Succeeded');
    expect(d.status.message).toBe('a is empty: 2 VMs moved off (1 live, 1 cold); a stays cordoned while this HostEvacuation exists (delete it to uncordon)');
    expect(cond(d.status, 'Ready')).toMatchObject({ status: 'True', reason: 'NodeEmpty' });
    expect(cond(d.status, 'Reconciling')).toMatchObject({ status: 'False', reason: 'Succeeded' });
    expect(cond(d.status, 'Stalled')).toMatchObject({ status: 'False' });
    expect(d.status.completionTime).toBe(NOW.toISOString());
    expect(d.actions).toEqual({ create: [], cancel: [], delete: [], stop: [], release: false });
    expect(d.events).toContainEqual(expect.objectContaining({ reason: 'Succeeded' }));
    // Final: the next look changes nothing.
    const again = decideEvacuation(facts({ evacuation: after(e, d.status), vms: [], moves }));
    expect(again.status).toBe(d.status);
  });

  test('a transient failure is retried elsewhere with a new MoveRequest; a permanent one ends Failed naming the VM and why', () => {
    const e = evacuation({ maxRetries: 1 }, { status: { phase: 'Evacuating' } });
    const transient = ownedMove('v1', 1, { phase: 'Failed', target: 'b', context: { attempt: 3, policy: { maxAttempts: 3 }, targetNode: 'b', unreachable: {}, failure: 'PreparingTarget: injected transient failure' } });
    const d = decideEvacuation(facts({ evacuation: e, vms: [vm('v1')], moves: [transient] }));
    expect(d.actions.create).toHaveLength(1);
    expect(d.actions.create[0]).toMatchObject({ name: 'drain-a-v1-2', attempt: 2, spec: { target: { nodeName: 'c' } } });
    expect(d.actions.create[0]!.events[0]).toMatchObject({ type: 'Warning', reason: 'Retrying' });

    const permanent = ownedMove('v1', 1, { phase: 'Failed', target: 'b', message: 'rolled back', context: { attempt: 1, policy: { maxAttempts: 3 }, targetNode: 'b', unreachable: {}, failure: 'PreparingTarget: unknown image' } });
    const f = decideEvacuation(facts({ evacuation: e, vms: [vm('v1'), vm('v2', { node: 'c' })], moves: [permanent, ownedMove('v2', 1, { phase: 'Succeeded', target: 'c' })] }));
    expect(f.status).toMatchObject({ phase: 'Failed', failed: 1, succeeded: 1, total: 2 });
    expect(f.status.message).toBe('1 of 2 VMs could not be moved off a — default/v1: PreparingTarget: unknown image');
    // kstatus (Flux) reads Stalled: a wait on this evacuation ends now, with the message.
    expect(cond(f.status, 'Stalled')).toMatchObject({ status: 'True', reason: 'VMsNotMoved', message: f.status.message });
    expect(cond(f.status, 'Reconciling')).toMatchObject({ status: 'False' });
    expect(f.status.moves!.find((m) => m.vmName === 'v1')!.message).toBe('PreparingTarget: unknown image');
    expect(f.events).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'Failed' }));
  });

  test('a VM no host can take waits while the evacuation still moves others, then is given up with the hosts\' reasons', () => {
    const big = vm('big', { memory: '32Gi' });
    const busy = decideEvacuation(facts({ evacuation: evacuation({}, { status: { phase: 'Evacuating' } }), vms: [big, vm('v1')], moves: [ownedMove('v1', 1, { phase: 'Migrating', target: 'b' })] }));
    expect(busy.status).toMatchObject({ phase: 'Evacuating', pending: 1, failed: 0 });
    expect(cond(busy.status, 'Reconciling')).toMatchObject({ status: 'True', reason: 'Evacuating', message: busy.status.message });
    expect(cond(busy.status, 'Stalled')).toMatchObject({ status: 'False' });
    expect(busy.status.plan![0]).toMatchObject({ vmName: 'big', rejected: [{ nodeName: 'b', reason: 'not enough memory: needs 32Gi, 16Gi free of 16Gi' }, { nodeName: 'c', reason: 'not enough memory: needs 32Gi, 16Gi free of 16Gi' }] });
    const idle = decideEvacuation(facts({ evacuation: evacuation({}, { status: { phase: 'Evacuating' } }), vms: [big, vm('v1', { node: 'b' })], moves: [ownedMove('v1', 1, { phase: 'Succeeded', target: 'b' })] }));
    expect(idle.status).toMatchObject({ phase: 'Failed', failed: 1, succeeded: 1 });
    expect(idle.status.message).toBe('1 of 2 VMs could not be moved off a — default/big: no host fits — b: not enough memory: needs 32Gi, 16Gi free of 16Gi; c: not enough memory: needs 32Gi, 16Gi free of 16Gi');
  });

  test('a VM another MoveRequest holds waits for it; one that left the node before its move started is cancelled', () => {
    const held = vm('v1', { moveRef: { name: 'someone', uid: 'other' } });
    const d = decideEvacuation(facts({ vms: [held] }));
    expect(d.actions.create).toEqual([]);
    expect(d.status.plan).toEqual([{ namespace: 'default', vmName: 'v1', order: 1, reason: 'waiting: the VM is being moved by MoveRequest someone', action: 'Wait' }]);
    const stale = ownedMove('v2', 1, { phase: 'Pending', target: 'b', source: 'c' });
    expect(decideEvacuation(facts({ vms: [vm('v2', { node: 'c' })], moves: [stale] })).actions.cancel).toEqual([{ namespace: 'default', name: 'drain-a-v2-1', why: 'the VM left a (it is on c) before this move started' }]);
  });

  test('vmSelector narrows the VMs; cordon: false leaves the node schedulable', () => {
    const e = evacuation({ cordon: false, vmSelector: { matchLabels: { app: 'web' } } });
    const d = decideEvacuation(facts({ evacuation: e, vms: [vm('web', { labels: { app: 'web' } }), vm('db', { labels: { app: 'db' } })] }));
    expect(d.actions.create.map((m) => m.vmName)).toEqual(['web']);
    expect(d.actions.node).toBeUndefined();
    expect(cond(d.status, 'Cordoned')).toMatchObject({ status: 'False', reason: 'NotRequested' });
  });

  test('a node the admin had cordoned is left cordoned, and its cordon is not re-made', () => {
    const d = decideEvacuation(facts({ node: { exists: true, unschedulable: true }, vms: [vm('v1')] }));
    expect(d.actions.node).toBeUndefined();
    expect(cond(d.status, 'Cordoned')).toMatchObject({ status: 'True', reason: 'AlreadyCordoned' });
  });

  test('an empty node succeeds at once', () => {
    expect(decideEvacuation(facts()).status).toMatchObject({ phase: 'Succeeded', total: 0, message: 'a has no VMs to move; a stays cordoned while this HostEvacuation exists (delete it to uncordon)' });
  });
});

describe('dead host', () => {
  const vms = [vm('shared'), vm('local', { storage: 'Local' })];

  test('not fenced: waits, says why and how to fence, creates nothing, and cancels its moves that had not started', () => {
    const pendingLive = ownedMove('shared', 1, { phase: 'Pending', target: 'b' });
    const d = decideEvacuation(facts({ host: deadHost(), vms, moves: [pendingLive] }));
    expect(d.status.phase).toBe('WaitingForFence');
    expect(d.status.hostState).toBe('Dead');
    expect(cond(d.status, 'Fenced')).toMatchObject({ status: 'False', reason: 'WaitingForFence' });
    // Only a person fencing the host moves it on: stalled, not reconciling.
    expect(cond(d.status, 'Stalled')).toMatchObject({ status: 'True', reason: 'WaitingForFence', message: d.status.message });
    expect(cond(d.status, 'Reconciling')).toMatchObject({ status: 'False' });
    expect(cond(d.status, 'Fenced')!.message).toMatch(/kubectl taint nodes a node.kubernetes.io\/out-of-service=nodeshutdown:NoExecute/);
    expect(d.actions.create).toEqual([]);
    expect(d.actions.cancel).toEqual([{ namespace: 'default', name: 'drain-a-shared-1', why: 'a died before this move started; the VM is recovered by a rebuild instead' }]);
    expect(d.events).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'WaitingForFence' }));
    expect(d.requeueAfterMs).toBe(5_000);
  });

  test('not yet past the grace period, or the Node still Ready: nothing happens (Pending)', () => {
    const h = host('a', { ready: false });
    const recent = { ...h, agent: { ...h.agent!, alive: false, expiredForSeconds: 5 } };
    const d = decideEvacuation(facts({ host: recent, vms }));
    expect(d.status.phase).toBe('Pending');
    expect(d.status.message).toMatch(/stopped renewing its Lease 5 s ago/);
    expect(d.actions.create).toEqual([]);
  });

  test('fenced: shared disks restart and local disks are rebuilt from the image, with the loss said plainly', () => {
    const e = evacuation({}, { status: { phase: 'WaitingForFence', conditions: [{ type: 'Fenced', status: 'False', reason: 'WaitingForFence', message: '', lastTransitionTime: '2030-01-01T00:00:00Z' }] } });
    const d = decideEvacuation(facts({ evacuation: e, host: deadHost({ fenced: true }), vms }));
    expect(cond(d.status, 'Fenced')).toMatchObject({ status: 'True', reason: 'OutOfServiceTaint' });
    expect(d.actions.create.map((m) => [m.vmName, m.spec.mode, m.step.variant])).toEqual([
      ['local', 'Rebuild', 'FromImage'],
      ['shared', 'Rebuild', 'FromSharedDisk'],
    ]);
    expect(d.actions.create[0]!.events).toContainEqual({ type: 'Warning', reason: 'LocalDataLost', message: 'default/local is rebuilt from its image debian-12 on b: the data on its local disks, left on dead a, is lost' });
    expect(d.status.moves!.find((m) => m.vmName === 'local')!.message).toBe('to be rebuilt from its image: the data on its local disks is lost');
    expect(d.events).toContainEqual(expect.objectContaining({ reason: 'Fenced' }));

    const done = [
      ownedMove('local', 1, { phase: 'Succeeded', target: 'b', mode: 'Rebuild', moveType: 'Rebuild', variant: 'FromImage' }),
      ownedMove('shared', 1, { phase: 'Succeeded', target: 'c', mode: 'Rebuild', moveType: 'Rebuild', variant: 'FromSharedDisk' }),
    ];
    const s = decideEvacuation(facts({ evacuation: after(e, d.status), host: deadHost({ fenced: true }), vms: [vm('shared', { node: 'c' }), vm('local', { node: 'b', storage: 'Local' })], moves: done }));
    expect(s.status.phase).toBe('Succeeded');
    expect(s.status.message).toBe('recovered the VMs of a: 1 VM restarted from its shared disks; 1 VM rebuilt from its image — the data on its local disks was lost; a stays cordoned while this HostEvacuation exists (delete it to uncordon)');
    expect(s.status.moves!.find((m) => m.vmName === 'local')!.message).toBe('rebuilt from its image: the data on its local disks was lost');
  });

  test('mode Live cannot recover a dead host: it waits and says what to do instead', () => {
    const d = decideEvacuation(facts({ evacuation: evacuation({ mode: 'Live' }), host: deadHost({ fenced: true }), vms }));
    expect(d.actions.create).toEqual([]);
    expect(d.status.plan![0]!.reason).toMatch(/mode Live needs the agent of a, which is dead/);
  });

  test('the host comes back before it is fenced: nothing was rebuilt, its VMs now move off live', () => {
    const waiting = decideEvacuation(facts({ host: deadHost(), vms }));
    const d = decideEvacuation(facts({ evacuation: after(evacuation(), waiting.status), vms }));
    expect(cond(d.status, 'Fenced')).toMatchObject({ status: 'False', reason: 'HostReturned' });
    expect(d.events).toContainEqual(expect.objectContaining({ reason: 'HostReturned' }));
    expect(d.actions.create.map((m) => m.step.moveType)).toEqual(['Live', 'Live']);
    expect(d.status.hostState).toBe('Alive');
  });
});

describe('cancel and delete', () => {
  const ours = { type: 'Cordoned', status: 'True' as const, reason: 'CordonedByVmove', message: '', lastTransitionTime: '2030-01-01T00:00:00Z' };

  test('cancel: stops every unfinished move, waits for them, then uncordons what vmove cordoned', () => {
    const e = evacuation({ cancel: true }, { status: { phase: 'Evacuating', conditions: [ours] } });
    const moves = [ownedMove('v1', 1, { phase: 'Migrating', target: 'b' }), ownedMove('v2', 1, { phase: 'Succeeded', target: 'c' })];
    const d = decideEvacuation(facts({ evacuation: e, node: { exists: true, unschedulable: true }, vms: [vm('v1'), vm('v2', { node: 'c' })], moves }));
    expect(d.actions.cancel).toEqual([{ namespace: 'default', name: 'drain-a-v1-1', why: 'the evacuation was cancelled' }]);
    expect(d.actions.node).toBeUndefined();
    expect(d.status.phase).toBe('Evacuating');
    expect(cond(d.status, 'Progressing')).toMatchObject({ status: 'True', reason: 'Cancelling' });
    expect(cond(d.status, 'Reconciling')).toMatchObject({ status: 'True', reason: 'Cancelling' });

    const rolledBack = [ownedMove('v1', 1, { phase: 'Cancelled', target: 'b', annotations: { [CANCELLED_BY_ANNOTATION]: 'the evacuation was cancelled' } }), moves[1]!];
    const c = decideEvacuation(facts({ evacuation: after(e, d.status), node: { exists: true, unschedulable: true }, vms: [vm('v1'), vm('v2', { node: 'c' })], moves: rolledBack }));
    expect(c.status.phase).toBe('Cancelled');
    expect(c.actions.node).toBe('uncordon');
    expect(cond(c.status, 'Cordoned')).toMatchObject({ status: 'False', reason: 'UncordonedByVmove' });
    expect(c.status.message).toBe('cancelled: 1 VM had been moved off a; the others stay where they are; a is uncordoned');
    expect(cond(c.status, 'Stalled')).toMatchObject({ status: 'True', reason: 'Cancelled', message: c.status.message });
  });

  test('cancel leaves a node cordoned that the admin cordoned, or that another evacuation still needs cordoned', () => {
    const admins = evacuation({ cancel: true }, { status: { phase: 'Evacuating', conditions: [{ ...ours, reason: 'AlreadyCordoned' }] } });
    expect(decideEvacuation(facts({ evacuation: admins, node: { exists: true, unschedulable: true } })).actions.node).toBeUndefined();
    const shared = evacuation({ cancel: true }, { status: { phase: 'Evacuating', conditions: [ours] } });
    const d = decideEvacuation(facts({ evacuation: shared, node: { exists: true, unschedulable: true }, cordonWantedByOthers: true }));
    expect(d.actions.node).toBeUndefined();
    expect(d.status.message).toMatch(/a stays cordoned: another evacuation of it is still running/);
  });

  test('delete: deletes its MoveRequests (each rolls back), and only when all are gone uncordons and lets go', () => {
    const e = evacuation({}, { deleting: true, status: { phase: 'Evacuating', conditions: [ours] } });
    const moves = [ownedMove('v1', 1, { phase: 'Migrating', target: 'b' })];
    const d = decideEvacuation(facts({ evacuation: e, node: { exists: true, unschedulable: true }, moves }));
    expect(d.actions).toMatchObject({ delete: [{ namespace: 'default', name: 'drain-a-v1-1' }], release: false });
    expect(d.actions.node).toBeUndefined();
    const gone = decideEvacuation(facts({ evacuation: e, node: { exists: true, unschedulable: true }, moves: [] }));
    expect(gone.actions).toMatchObject({ node: 'uncordon', release: true });
  });
});

describe('dry run', () => {
  test('the whole plan, with every rejected host, and nothing else: no cordon, no move', () => {
    const e = evacuation({ dryRun: true });
    const hosts = [host('a'), host('b', { caps: { memoryBytes: 2 * GiB } }), host('c', { cordoned: true })];
    const d = decideEvacuation(facts({ evacuation: e, hosts, vms: [vm('v1'), vm('v2'), vm('v3')] }));
    expect(d.actions).toEqual({ create: [], cancel: [], delete: [], stop: [], release: false });
    expect(d.status.phase).toBe('Succeeded');
    expect(d.status.plan!.map((p) => [p.order, p.vmName, p.targetNode ?? null])).toEqual([
      [1, 'v1', 'b'],
      [2, 'v2', 'b'],
      [3, 'v3', null],
    ]);
    expect(d.status.plan![0]!.rejected).toEqual([{ nodeName: 'c', reason: 'is cordoned' }]);
    expect(d.status.message).toBe('dry run: 2 of 3 VMs on a have a target; 1 cannot be moved now (see status.plan); nothing was moved and a was not cordoned');
    expect(cond(d.status, 'Reconciling')).toMatchObject({ status: 'False', reason: 'Succeeded' });
    expect(cond(d.status, 'Stalled')).toMatchObject({ status: 'False' });
    expect(cond(d.status, 'Cordoned')).toBeUndefined();
  });
});
