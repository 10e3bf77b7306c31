// Per-VM evacuation strategies: where each comes from (VM > MovePolicy > default), what the plan
// does with each, every blocker it lists, and how a running evacuation counts them.
import type { EvacuationStrategy, MovePolicy, VirtualMachine } from '../../../../src/api/types';
import { decideEvacuation } from '../../../../src/controller/hostevacuation/decide';
import { diskCopyTooSlow, planEvacuation } from '../../../../src/controller/hostevacuation/planner';
import { strategies, strategyOf, type StrategyFacts } from '../../../../src/controller/hostevacuation/strategy';
import type { EvacuationFacts } from '../../../../src/controller/hostevacuation/types';
import { GiB, evacuation, host, ownedMove, vm } from './fixtures';

const withStrategy = (v: VirtualMachine, s: EvacuationStrategy | undefined): VirtualMachine => ({ ...v, spec: { ...v.spec, ...(s ? { evacuationStrategy: s } : {}) } });
const policy = (name: string, spec: MovePolicy['spec']): MovePolicy => ({ apiVersion: 'vmove.dev/v1alpha1', kind: 'MovePolicy', metadata: { name }, spec });
const sf = (policies: MovePolicy[] = []): StrategyFacts => ({ policies, namespaceLabels: () => ({}), defaults: { bandwidthMiBps: 0, completionTimeoutPerGiB: 150 } });

function plan(vms: VirtualMachine[], o: { hosts?: ReturnType<typeof host>[]; policies?: MovePolicy[]; mode?: 'Auto' | 'Cold' | 'Rebuild' } = {}) {
  return planEvacuation({ node: 'a', vms, hosts: o.hosts ?? [host('a'), host('b')], mode: o.mode ?? 'Auto', strategies: strategies(vms, sf(o.policies)) });
}
const row = (steps: ReturnType<typeof plan>, name: string) => steps.find((s) => s.vmName === name)!;

describe('where a VM strategy comes from', () => {
  const gold = policy('gold', { selectors: { vmSelector: { matchLabels: { tier: 'gold' } } }, evacuationStrategy: 'Cold', completionTimeoutPerGiB: 10 });
  test('the VM own field wins over the matching MovePolicy', () => {
    expect(strategyOf(withStrategy(vm('v', { labels: { tier: 'gold' } }), 'Shutdown'), sf([gold]))).toMatchObject({ strategy: 'Shutdown', source: 'VirtualMachine', completionTimeoutPerGiB: 10 });
  });
  test('the matching MovePolicy wins over the default, and is named', () => {
    expect(strategyOf(vm('v', { labels: { tier: 'gold' } }), sf([gold]))).toEqual({ strategy: 'Cold', source: 'MovePolicy', policy: 'gold', bandwidthMiBps: 0, completionTimeoutPerGiB: 10 });
  });
  test('no field and no policy with one: LiveMigrateIfPossible (a matching policy without the field still gives its timeouts)', () => {
    expect(strategyOf(vm('v'), sf([gold]))).toEqual({ strategy: 'LiveMigrateIfPossible', source: 'Default', bandwidthMiBps: 0, completionTimeoutPerGiB: 150 });
    const slow = policy('slow', { bandwidthMiBps: 5 });
    expect(strategyOf(vm('v'), sf([slow]))).toEqual({ strategy: 'LiveMigrateIfPossible', source: 'Default', bandwidthMiBps: 5, completionTimeoutPerGiB: 150 });
  });
});

describe('what the plan does with each strategy', () => {
  test('LiveMigrateIfPossible: live when a host takes it live, cold otherwise', () => {
    expect(row(plan([vm('v')]), 'v')).toMatchObject({ action: 'LiveMove', moveType: 'Live', targetNode: 'b', strategy: 'LiveMigrateIfPossible', strategySource: 'Default', spec: { mode: 'Auto' } });
    const noLive = plan([vm('v')], { hosts: [host('a'), host('b', { caps: { liveMigration: false } })] });
    expect(row(noLive, 'v')).toMatchObject({ action: 'ColdMove', moveType: 'Cold', targetNode: 'b' });
    expect(row(noLive, 'v').blockers).toBeUndefined();
  });

  test('LiveMigrate: live; with only cold targets its row fails with the reason, the next VM is still planned', () => {
    const hosts = [host('a'), host('b', { caps: { liveMigration: false } })];
    const steps = plan([withStrategy(vm('strict', { memory: '2Gi' }), 'LiveMigrate'), vm('other')], { hosts });
    expect(row(steps, 'strict')).toMatchObject({ action: 'Fail', impossible: true, strategy: 'LiveMigrate', strategySource: 'VirtualMachine', blockers: [{ reason: 'NoLiveTarget' }] });
    expect(row(steps, 'strict').reason).toMatch(/no host can receive it live .*b: cannot receive a live migration.*forbids moving it cold/);
    expect(row(steps, 'other')).toMatchObject({ action: 'ColdMove', targetNode: 'b' });
    expect(row(plan([withStrategy(vm('v'), 'LiveMigrate')]), 'v')).toMatchObject({ action: 'LiveMove', spec: { mode: 'Live' } });
  });

  test('LiveMigrate: a source that cannot send live is a NoLiveTarget blocker; an evacuation in mode Cold conflicts', () => {
    const src = plan([withStrategy(vm('v'), 'LiveMigrate')], { hosts: [host('a', { caps: { liveMigration: false } }), host('b')] });
    expect(row(src, 'v')).toMatchObject({ action: 'Fail', blockers: [{ reason: 'NoLiveTarget', message: 'the source host a cannot send a live migration' }] });
    expect(row(plan([withStrategy(vm('v'), 'LiveMigrate')], { mode: 'Cold' }), 'v')).toMatchObject({ action: 'Fail', blockers: [{ reason: 'NoLiveTarget' }] });
  });

  test('LiveMigrate on a stopped VM: nothing runs to keep running, it moves cold', () => {
    expect(row(plan([withStrategy(vm('v', { running: false }), 'LiveMigrate')]), 'v')).toMatchObject({ action: 'ColdMove', spec: { mode: 'Cold' } });
  });

  test('Cold: cold even though a host could take it live', () => {
    expect(row(plan([withStrategy(vm('v'), 'Cold')]), 'v')).toMatchObject({ action: 'ColdMove', moveType: 'Cold', targetNode: 'b', spec: { mode: 'Cold' } });
  });

  test('Shutdown: no target, no MoveRequest; the row says it is stopped and left', () => {
    const s = row(plan([withStrategy(vm('v'), 'Shutdown')]), 'v');
    expect(s).toMatchObject({ action: 'Shutdown', impossible: false, reason: 'evacuationStrategy Shutdown (from the VM): to be stopped and left on a' });
    expect(s.spec).toBeUndefined();
    expect(s.targetNode).toBeUndefined();
  });

  test('None: waits for a person, listed as a StrategyNone blocker, from the MovePolicy that said so', () => {
    const s = row(plan([vm('v', { labels: { keep: 'yes' } })], { policies: [policy('hands-off', { selectors: { vmSelector: { matchLabels: { keep: 'yes' } } }, evacuationStrategy: 'None' })] }), 'v');
    expect(s).toMatchObject({ action: 'WaitForPerson', strategy: 'None', strategySource: 'MovePolicy', strategyPolicy: 'hands-off', blockers: [{ reason: 'StrategyNone' }] });
  });

  test('a dead host: moving strategies rebuild, Shutdown and None stay as they say', () => {
    const vms = [withStrategy(vm('l'), 'LiveMigrate'), withStrategy(vm('c'), 'Cold'), withStrategy(vm('s'), 'Shutdown'), withStrategy(vm('n'), 'None')];
    const steps = plan(vms, { mode: 'Rebuild' });
    expect(Object.fromEntries(steps.map((s) => [s.vmName, s.action]))).toEqual({ l: 'Rebuild', c: 'Rebuild', s: 'Shutdown', n: 'WaitForPerson' });
  });
});

describe('blockers', () => {
  test('no host with room', () => {
    const s = row(plan([vm('v', { memory: '32Gi' })]), 'v');
    expect(s).toMatchObject({ action: 'Fail', blockers: [{ reason: 'NoHostWithRoom', message: expect.stringMatching(/b: not enough memory/) }] });
  });

  test('local disks too big for the link within the move timeout: from the policy cap, or the link a host advertises', () => {
    const local = vm('v', { storage: 'Local' }); // 10 GiB local disk + 1 GiB memory
    const capped = row(plan([local], { policies: [policy('slow', { bandwidthMiBps: 10, completionTimeoutPerGiB: 30 })] }), 'v');
    expect(capped).toMatchObject({ action: 'Fail', impossible: true, moveType: 'Live', variant: 'BlockMigration', blockers: [{ reason: 'DiskCopyTooSlow' }] });
    expect(capped.reason).toMatch(/take about 1127 s over the link at 10 MiB\/s, more than the move's timeout of 330 s \(completionTimeoutPerGiB 30\)/);
    const slowTarget = row(plan([local], { hosts: [host('a'), host('b', { caps: { linkMiBps: 1 } })] }), 'v');
    expect(slowTarget.blockers).toEqual([{ reason: 'DiskCopyTooSlow', message: expect.stringMatching(/^to b: .* at 1 MiB\/s/) }]);
    // Shared disks copy nothing: no blocker whatever the link.
    expect(row(plan([vm('w')], { hosts: [host('a'), host('b', { caps: { linkMiBps: 1 } })] }), 'w')).toMatchObject({ action: 'LiveMove' });
  });

  test('diskCopyTooSlow: unknown speed is no blocker; a fast enough link is none', () => {
    expect(diskCopyTooSlow(10 * GiB, [undefined], { bandwidthMiBps: 0, completionTimeoutPerGiB: 1 })).toBeUndefined();
    expect(diskCopyTooSlow(10 * GiB, [2048], { bandwidthMiBps: 0, completionTimeoutPerGiB: 1 })).toBeUndefined();
    expect(diskCopyTooSlow(10 * GiB, [2048], { bandwidthMiBps: 512, completionTimeoutPerGiB: 1 })).toMatch(/512 MiB\/s/);
  });
});

describe('a running evacuation with one VM of each strategy', () => {
  const vms = [
    withStrategy(vm('live', { memory: '2Gi' }), 'LiveMigrate'),
    withStrategy(vm('maybe'), 'LiveMigrateIfPossible'),
    withStrategy(vm('cold'), 'Cold'),
    withStrategy(vm('shut'), 'Shutdown'),
    withStrategy(vm('none'), 'None'),
  ];
  const facts = (o: Partial<EvacuationFacts> = {}): EvacuationFacts => {
    const list = o.vms ?? vms;
    return {
      evacuation: evacuation({ maxParallel: 5 }),
      now: new Date('2030-01-01T00:00:00Z'),
      node: { exists: true, unschedulable: true },
      host: host('a'),
      hosts: [host('a'), host('b', { caps: { liveMigration: false } })],
      vms: list,
      moves: [],
      cordonWantedByOthers: false,
      deadHostAfterSeconds: 40,
      strategies: strategies(list, sf()),
      ...o,
    };
  };

  test('moves what moves, stops Shutdown, fails LiveMigrate at once, names the VM that waits for a person', () => {
    const d = decideEvacuation(facts());
    expect(d.actions.create.map((m) => [m.vmName, m.spec.mode])).toEqual([
      ['cold', 'Cold'],
      ['maybe', 'Auto'],
    ]);
    expect(d.actions.stop).toEqual([{ namespace: 'default', name: 'shut', why: 'evacuationStrategy Shutdown (HostEvacuation drain-a)' }]);
    expect(d.status).toMatchObject({ phase: 'Evacuating', failed: 1, pending: 4, total: 5 });
    expect(d.status.plan?.find((p) => p.vmName === 'live')).toMatchObject({ action: 'Fail', blockers: [{ reason: 'NoLiveTarget' }] });
    expect(d.status.plan?.find((p) => p.vmName === 'none')).toMatchObject({ action: 'WaitForPerson' });
    expect(d.status.message).toMatch(/waiting for a person \(evacuationStrategy None\): default\/none/);
    expect(d.status.conditions?.find((c) => c.type === 'WaitingForPerson')).toMatchObject({ status: 'True', reason: 'EvacuationStrategyNone', message: expect.stringContaining('default/none') });
    expect(d.events.map((e) => e.reason)).toEqual(expect.arrayContaining(['ShuttingDown', 'WaitingForPerson']));
  });

  test('once the others are done: Shutdown counts as done when stopped, None holds the evacuation (stalled) until a person acts', () => {
    const stopped = vms.map((v) => (v.metadata.name === 'shut' ? { ...v, spec: { ...v.spec, running: false }, status: { ...v.status, phase: 'Stopped' as const } } : v));
    const moved = ['cold', 'maybe'].map((n) => ownedMove(n, 1, { phase: 'Succeeded', target: 'b', moveType: 'Cold' }));
    const left = stopped.filter((v) => v.metadata.name !== 'cold' && v.metadata.name !== 'maybe');
    const d = decideEvacuation(facts({ vms: left, moves: moved }));
    expect(d.actions.stop).toEqual([]);
    expect(d.status).toMatchObject({ phase: 'Evacuating', succeeded: 3, failed: 1, pending: 1, inProgress: 0 });
    expect(d.status.plan?.find((p) => p.vmName === 'shut')).toMatchObject({ action: 'Shutdown', reason: 'evacuationStrategy Shutdown (from the VM): stopped and left on a' });
    expect(d.status.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'WaitingForPerson' });

    // A person moves the VM by hand: it leaves the evacuation's story (as any VM moved off by hand does),
    // and the evacuation ends, Failed for the LiveMigrate VM as failed rows always count.
    const byHand = left.map((v) => (v.metadata.name === 'none' ? { ...v, status: { ...v.status, nodeName: 'b', scheduledNode: 'b' } } : v));
    const prev = d.status;
    const end = decideEvacuation(facts({ vms: byHand, moves: moved, evacuation: evacuation({ maxParallel: 5 }, { status: prev }) }));
    expect(end.status).toMatchObject({ phase: 'Failed', total: 4, succeeded: 3, failed: 1, pending: 0 });
    expect(end.status.message).toMatch(/^1 of 4 VMs could not be moved off a — default\/live: .*no host can receive it live/);
    expect(end.status.conditions?.find((c) => c.type === 'WaitingForPerson')).toMatchObject({ status: 'False', reason: 'NoneWaiting' });
  });

  test('changing the strategy of the waiting VM lets it go', () => {
    const changed = vms.map((v) => (v.metadata.name === 'none' ? withStrategy(v, 'Cold') : v));
    const d = decideEvacuation(facts({ vms: changed }));
    expect(d.actions.create.map((m) => m.vmName)).toContain('none');
    expect(d.status.conditions?.find((c) => c.type === 'WaitingForPerson')).toBeUndefined();
  });

  test('all VMs Shutdown and stopped: the evacuation succeeds and says they were left', () => {
    const s = withStrategy(vm('s', { running: false }), 'Shutdown');
    const d = decideEvacuation(facts({ vms: [s] }));
    expect(d.status).toMatchObject({ phase: 'Succeeded', succeeded: 1 });
    expect(d.status.message).toBe('a runs no VMs; 1 VM stopped and left on a (evacuationStrategy Shutdown)');
  });

  test('dry run lists every VM with its action and blockers and moves nothing', () => {
    const d = decideEvacuation(facts({ evacuation: evacuation({ dryRun: true }), node: { exists: true, unschedulable: false } }));
    expect(d.actions).toEqual({ create: [], cancel: [], delete: [], stop: [], release: false });
    expect(Object.fromEntries((d.status.plan ?? []).map((p) => [p.vmName, p.action]))).toEqual({ live: 'Fail', maybe: 'ColdMove', cold: 'ColdMove', shut: 'Shutdown', none: 'WaitForPerson' });
    expect(d.status.message).toBe('dry run: 2 of 5 VMs on a have a target; 1 would be shut down and left on a; 1 would wait for a person (evacuationStrategy None); 1 cannot be moved now (see status.plan); nothing was moved and a was not cordoned');
  });
});
