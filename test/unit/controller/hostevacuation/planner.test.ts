import { evacuationOrder, planEvacuation, withPendingMoves } from '../../../../src/controller/hostevacuation/planner';
import { GiB, host, ownedMove, vm } from './fixtures';

const targets = (names: string[], o: Parameters<typeof host>[1] = {}) => names.map((n) => host(n, o));

describe('planEvacuation', () => {
  test('twenty VMs over four targets: every VM has a target, no target is overfilled, load spreads', () => {
    const vms = Array.from({ length: 20 }, (_, i) => vm(`vm-${String(i).padStart(2, '0')}`, { memory: `${1 + (i % 3)}Gi` }));
    const hosts = [host('a'), ...targets(['b', 'c', 'd', 'e'], { caps: { memoryBytes: 12 * GiB } })];
    const plan = planEvacuation({ node: 'a', vms, hosts, mode: 'Auto' });
    expect(plan).toHaveLength(20);
    expect(plan.map((s) => s.order)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const load = new Map<string, number>();
    for (const s of plan) {
      expect(s.targetNode).toBeDefined();
      expect(s.targetNode).not.toBe('a');
      expect(s).toMatchObject({ moveType: 'Live', variant: 'SharedStorage', spec: { vmName: s.vmName, mode: 'Auto', target: { nodeName: s.targetNode } } });
      load.set(s.targetNode!, (load.get(s.targetNode!) ?? 0) + Number.parseInt(String(s.vm.spec.memory), 10));
    }
    // 40 GiB over 4 × 12 GiB hosts: each takes its share, none more than it holds.
    for (const gib of load.values()) {
      expect(gib).toBeLessThanOrEqual(12);
      expect(gib).toBeGreaterThanOrEqual(8);
    }
  });

  test('biggest VMs go first (memory plus local disks to carry), then by name', () => {
    // "local" carries 1 GiB of memory and a 10 GiB local disk: the most bytes of all.
    const order = evacuationOrder([vm('small', { memory: '1Gi' }), vm('big-b', { memory: '8Gi' }), vm('big-a', { memory: '8Gi' }), vm('local', { memory: '1Gi', storage: 'Local' })]);
    expect(order.map((v) => v.metadata.name)).toEqual(['local', 'big-a', 'big-b', 'small']);
  });

  test('each VM counts the room the VMs before it took; the one that no longer fits says why, host by host', () => {
    const hosts = [
      host('a'),
      host('b', { used: { cpu: 0, memoryBytes: 8 * GiB } }),
      host('c', { used: { cpu: 0, memoryBytes: 12 * GiB } }),
      host('d', { cordoned: true }),
      host('e', { alive: false }),
    ];
    const plan = planEvacuation({ node: 'a', vms: ['v1', 'v2', 'v3', 'v4'].map((n) => vm(n, { memory: '4Gi' })), hosts, mode: 'Auto' });
    expect(plan.map((s) => [s.vmName, s.targetNode])).toEqual([
      ['v1', 'b'],
      ['v2', 'b'],
      ['v3', 'c'],
      ['v4', undefined],
    ]);
    const last = plan[3]!;
    expect(last.reason).toMatch(/no host fits/);
    expect(last.waitable).toBe(false);
    expect(Object.fromEntries(last.rejected!.map((r) => [r.nodeName, r.reason]))).toEqual({
      b: 'not enough memory: needs 4Gi, 0 free of 16Gi',
      c: 'not enough memory: needs 4Gi, 0 free of 16Gi',
      d: 'is cordoned',
      e: "its agent's lease expired 60 s ago",
    });
    expect(plan[0]!.reason).toMatch(/b has the most room left \(4\.0 GiB of memory free after\)/);
  });

  test('Auto: running VMs move live (block migration for local disks), stopped ones cold', () => {
    const plan = planEvacuation({
      node: 'a',
      vms: [vm('shared'), vm('local', { storage: 'Local' }), vm('stopped', { running: false })],
      hosts: [host('a'), host('b')],
      mode: 'Auto',
    });
    const by = Object.fromEntries(plan.map((s) => [s.vmName, [s.moveType, s.variant]]));
    expect(by).toEqual({ shared: ['Live', 'SharedStorage'], local: ['Live', 'BlockMigration'], stopped: ['Cold', 'SharedStorage'] });
  });

  test('Auto falls back to cold when no host can receive a live migration, and says so', () => {
    const plan = planEvacuation({ node: 'a', vms: [vm('web')], hosts: [host('a'), host('b', { caps: { liveMigration: false } })], mode: 'Auto' });
    expect(plan[0]).toMatchObject({ targetNode: 'b', moveType: 'Cold', variant: 'SharedStorage' });
    expect(plan[0]!.reason).toMatch(/no host can receive it live.*moving cold/);
  });

  test('Rebuild (a dead host): shared disks restart, local disks are rebuilt from the image and the plan says their data is lost', () => {
    const plan = planEvacuation({
      node: 'a',
      vms: [vm('shared'), vm('local', { storage: 'Local' })],
      hosts: [host('a', { alive: false }), host('b')],
      mode: 'Rebuild',
    });
    const by = Object.fromEntries(plan.map((s) => [s.vmName, s]));
    expect(by.shared).toMatchObject({ targetNode: 'b', moveType: 'Rebuild', variant: 'FromSharedDisk' });
    expect(by.local).toMatchObject({ targetNode: 'b', moveType: 'Rebuild', variant: 'FromImage' });
    expect(by.local!.reason).toMatch(/data is lost/);
  });

  test('target.nodeSelector limits the targets, and the others are rejected with the label they lack', () => {
    const plan = planEvacuation({
      node: 'a',
      vms: [vm('web')],
      hosts: [host('a'), host('b', { labels: { zone: 'east' } }), host('c', { labels: { zone: 'west' } })],
      mode: 'Auto',
      nodeSelector: { zone: 'west' },
    });
    expect(plan[0]!.targetNode).toBe('c');
    expect(plan[0]!.spec).toEqual({ vmName: 'web', mode: 'Auto', priority: 'Maintenance', target: { nodeName: 'c' } });
    expect(plan[0]!.rejected).toEqual([{ nodeName: 'b', reason: 'does not match nodeSelector zone=west' }]);
  });

  test('a retry avoids the hosts where earlier attempts failed, unless no other host fits', () => {
    const hosts = [host('a'), host('b'), host('c', { used: { cpu: 0, memoryBytes: GiB } })];
    const avoided = planEvacuation({ node: 'a', vms: [vm('web')], hosts, mode: 'Auto', avoid: new Map([['default/web', ['b']]]) });
    expect(avoided[0]!.targetNode).toBe('c');
    expect(avoided[0]!.reason).toMatch(/avoids b, where an earlier attempt failed/);
    expect(avoided[0]!.rejected).toEqual([{ nodeName: 'b', reason: 'an earlier attempt to move the VM there failed' }]);
    const onlyOne = planEvacuation({ node: 'a', vms: [vm('web')], hosts: [host('a'), host('b')], mode: 'Auto', avoid: new Map([['default/web', ['b']]]) });
    expect(onlyOne[0]!.targetNode).toBe('b');
    expect(onlyOne[0]!.reason).toMatch(/no host but b fits/);
  });

  test('a VM the request could never move is marked impossible, with the reason', () => {
    const plan = planEvacuation({ node: 'a', vms: [vm('stopped', { running: false })], hosts: [host('a'), host('b')], mode: 'Live' });
    expect(plan[0]).toMatchObject({ impossible: true });
    expect(plan[0]!.targetNode).toBeUndefined();
    expect(plan[0]!.reason).toMatch(/cannot be moved: the VM is stopped/);
  });

  test('room held by moves in flight makes an unplaced VM waitable', () => {
    const plan = planEvacuation({
      node: 'a',
      vms: [vm('web', { memory: '4Gi' })],
      hosts: [host('a'), host('b', { used: { cpu: 1, memoryBytes: 14 * GiB }, heldByMoves: { cpu: 1, memoryBytes: 4 * GiB } })],
      mode: 'Auto',
    });
    expect(plan[0]).toMatchObject({ waitable: true });
    expect(plan[0]!.targetNode).toBeUndefined();
  });
});

describe('withPendingMoves', () => {
  test('moves that have not started yet take room on the target they name', () => {
    const web = vm('web', { memory: '4Gi' });
    const pending = ownedMove('web', 1, { target: 'b' });
    const started = ownedMove('web', 1, { target: 'c', phase: 'Migrating' });
    const hosts = withPendingMoves([host('a'), host('b'), host('c')], [pending, started], (k) => (k === 'default/web' ? web : undefined));
    expect(hosts.find((h) => h.node === 'b')!.used.memoryBytes).toBe(4 * GiB);
    // In flight: ClusterView.hosts() counts it already.
    expect(hosts.find((h) => h.node === 'c')!.used.memoryBytes).toBe(0);
  });
});
