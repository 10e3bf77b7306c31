// The whole of vmove with the libvirt driver: a real API server, the real controller, one real
// agent per node, and behind each agent its own libvirtd (hack/libvirt-sandbox.sh, started and
// stopped by the fleet) running vmove's test guest under TCG. VMs and MoveRequests go in with
// `kubectl apply`; each test checks the result as the user sees it and as the guest saw it (its
// serial console on each host). The moves the qemu suite covers in full (test/e2e/stack/qemu.test.ts)
// here prove the libvirt driver through the same engine: live over shared storage, live with
// block migration, cold, and a target agent lost mid-migration. Tests run one after another.
import { continuousHeartbeats, historyText, parseConsole, RealStack, TERMINAL, waitHeartbeat } from '../../support/e2eFleet';
import { moveYaml } from '../../support/vmoveEnv';

jest.setTimeout(300_000);

const DRIVER = 'libvirt';
let stack: RealStack;
const started = Date.now();

beforeAll(async () => {
  stack = await RealStack.start(DRIVER);
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  console.log(`e2e stack (${DRIVER}): ${((Date.now() - started) / 1000).toFixed(0)} s`);
}, 120_000);

test('each node runs its own libvirtd', () => {
  const daemons = [...stack.env.fleet.nodes.values()].map((n) => n.libvirt);
  expect(daemons.every((d) => d !== undefined && d.pid > 0)).toBe(true);
  expect(new Set(daemons.map((d) => d!.socket)).size).toBe(3);
});

test('live move over shared storage: the guest runs on at the target without restarting', async () => {
  await stack.createVm('web', 'node-a', { storage: 'SharedFile', kernelArgs: 'vmove.disk_counter=1 vmove.dirty_mib=16' });
  const { mr, onSource, target } = await stack.watchedMove('web-live', 'web', 'node-a', 'node-b', { mode: 'Live', target: { nodeName: 'node-b' } });
  stack.ended(mr, 'Succeeded');
  expect(mr.status).toMatchObject({ moveType: 'Live', variant: 'SharedStorage', sourceNode: 'node-a', targetNode: 'node-b' });
  stack.wentThrough(mr, ['Pending', 'Scheduling', 'PreparingTarget', 'Migrating', 'SwitchingOver', 'Verifying', 'CleaningUp', 'Succeeded']);
  const beats = await stack.ranOnAcross(onSource, target, 'web');
  expect(beats.at(-1)!.disk - beats[0]!.disk).toBe(beats.at(-1)!.n - beats[0]!.n);
  await stack.runsOnlyOn('web', 'node-b');
  expect(await stack.holds('node-a', 'web')).toBe(false);
});

test('live move of a VM on local disks: block migration carries disk and memory', async () => {
  await stack.createVm('db', 'node-a', { storage: 'Local', kernelArgs: 'vmove.disk_counter=1 vmove.dirty_mib=16' });
  const { mr, onSource, target } = await stack.watchedMove('db-live', 'db', 'node-a', 'node-b', { mode: 'Live', target: { nodeName: 'node-b' } });
  stack.ended(mr, 'Succeeded');
  expect(mr.status).toMatchObject({ moveType: 'Live', variant: 'BlockMigration', sourceNode: 'node-a', targetNode: 'node-b' });
  const beats = await stack.ranOnAcross(onSource, target, 'db');
  // The counter the guest keeps on its disk goes on: the target's disk holds the source's data.
  expect(beats.at(-1)!.disk - beats[0]!.disk).toBe(beats.at(-1)!.n - beats[0]!.n);
  await stack.runsOnlyOn('db', 'node-b');
  expect(await stack.holds('node-a', 'db')).toBe(false);
});

test('cold move: the VM stops, its local disk is copied, and it boots on the target with its data', async () => {
  const { mr, onSource, target } = await stack.watchedMove('db-cold', 'db', 'node-b', 'node-c', { mode: 'Cold', target: { nodeName: 'node-c' } });
  stack.ended(mr, 'Succeeded');
  expect(mr.status).toMatchObject({ moveType: 'Cold', variant: 'DiskCopy', sourceNode: 'node-b', targetNode: 'node-c' });
  await stack.bootedWithDataOf(onSource, target, 'db');
  await stack.runsOnlyOn('db', 'node-c');
  expect(await stack.holds('node-b', 'db')).toBe(false);
});

test('the target agent dies mid-migration: the move rolls back and the guest runs on at the source', async () => {
  const source = stack.guest('node-b', 'web').setMark();
  await waitHeartbeat(stack.env, 'node-b', 'web', source.last()?.n ?? 0);
  // 4 MiB/s and no auto-converge: the migration cannot end before the dead agent's Lease does
  // (the target's libvirtd, which outlives its agent, would otherwise finish it on its own).
  const policy = { bandwidthMiBps: 4, allowAutoConverge: false, maxAttempts: 1 };
  await stack.env.apply(moveYaml('web-doomed', 'web', { mode: 'Live', target: { nodeName: 'node-c' }, policy }));
  await stack.migrating('web-doomed');
  await stack.env.fleet.kill(stack.env.fleet.agents.get('node-c'));
  const mr = await stack.env.waitForMove('web-doomed', TERMINAL, 180_000);
  stack.ended(mr, 'Failed');
  expect(historyText(mr).join('\n')).toContain('target host lost during Migrating');
  expect(mr.status?.conditions?.find((c) => c.type === 'RolledBack')).toMatchObject({ status: 'True' });
  await stack.runsOnlyOn('web', 'node-b');
  // The domain node-c's libvirtd had defined to receive the guest goes once its agent is back
  // and it has looked left over for the grace period (5 s here, 30 by default).
  await stack.env.fleet.restartAgent('node-c', { agentArgs: ['--leftover-grace-seconds', '5'] });
  await stack.env.waitFor('node-c agent back', async () => (await stack.env.hostInventory()).has('node-c'));
  await waitHeartbeat(stack.env, 'node-b', 'web', source.last()!.n);
  expect(await stack.env.runningOn('web')).toEqual(['node-b']);
  await stack.env.waitFor('node-c to remove its leftover copy of web', async () => !(await stack.holds('node-c', 'web')));
  expect(await stack.env.runningOn('web')).toEqual(['node-b']);
  expect(parseConsole(source.sinceMark()).boots).toEqual([]);
  continuousHeartbeats([source.sinceMark()]);
});
