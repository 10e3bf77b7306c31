// Moves both stack suites (qemu, libvirt) make the same way and check the same way: each test
// file calls them in this order, so each finds the VMs where the one before left them.
import { continuousHeartbeats, historyText, parseConsole, type RealStack, TERMINAL, waitHeartbeat } from '../../support/e2eFleet';
import { moveYaml } from '../../support/vmoveEnv';

/** web, new on node-a (shared disk), moves live to node-b: the guest runs on without restarting, its disk counter too. */
export async function liveShared(stack: RealStack): Promise<void> {
  await stack.createVm('web', 'node-a', { storage: 'SharedFile', kernelArgs: 'vmove.disk_counter=1 vmove.dirty_mib=16' });
  const { mr, onSource, target } = await stack.watchedMove('web-live', 'web', 'node-a', 'node-b', { mode: 'Live', target: { nodeName: 'node-b' } });
  stack.ended(mr, 'Succeeded');
  expect(mr.status).toMatchObject({ moveType: 'Live', variant: 'SharedStorage', sourceNode: 'node-a', targetNode: 'node-b' });
  stack.wentThrough(mr, ['Pending', 'Scheduling', 'PreparingTarget', 'Migrating', 'SwitchingOver', 'Verifying', 'CleaningUp', 'Succeeded']);
  const beats = await stack.ranOnAcross(onSource, target, 'web');
  // The disk counter goes on with the heartbeat: the guest kept writing the same shared disk.
  expect(beats.at(-1)!.disk - beats[0]!.disk).toBe(beats.at(-1)!.n - beats[0]!.n);
  await stack.runsOnlyOn('web', 'node-b');
  expect(await stack.holds('node-a', 'web')).toBe(false);
}

/** db, new on node-a (local disk), moves live to node-b by block migration: disk and memory arrive. */
export async function liveBlock(stack: RealStack): Promise<void> {
  await stack.createVm('db', 'node-a', { storage: 'Local', kernelArgs: 'vmove.disk_counter=1 vmove.dirty_mib=16' });
  const { mr, onSource, target } = await stack.watchedMove('db-live', 'db', 'node-a', 'node-b', { mode: 'Live', target: { nodeName: 'node-b' } });
  stack.ended(mr, 'Succeeded');
  expect(mr.status).toMatchObject({ moveType: 'Live', variant: 'BlockMigration', sourceNode: 'node-a', targetNode: 'node-b' });
  stack.wentThrough(mr, ['Pending', 'Scheduling', 'PreparingTarget', 'Migrating', 'SwitchingOver', 'Verifying', 'CleaningUp', 'Succeeded']);
  expect(mr.status?.progress?.diskTotalBytes).toBeGreaterThan(0);
  const beats = await stack.ranOnAcross(onSource, target, 'db');
  // The counter the guest keeps on its disk goes on too: the target's disk holds the source's data.
  expect(beats.at(-1)!.disk - beats[0]!.disk).toBe(beats.at(-1)!.n - beats[0]!.n);
  await stack.runsOnlyOn('db', 'node-b');
  expect(await stack.holds('node-a', 'db')).toBe(false);
}

/** db (local disk) moves cold from node-b to node-c: stopped, disk copied, booted there with its data. */
export async function coldMove(stack: RealStack): Promise<void> {
  const { mr, onSource, target } = await stack.watchedMove('db-cold', 'db', 'node-b', 'node-c', { mode: 'Cold', target: { nodeName: 'node-c' } });
  stack.ended(mr, 'Succeeded');
  expect(mr.status).toMatchObject({ moveType: 'Cold', variant: 'DiskCopy', sourceNode: 'node-b', targetNode: 'node-c' });
  stack.wentThrough(mr, ['Pending', 'Scheduling', 'StoppingSource', 'CopyingDisks', 'PreparingTarget', 'SwitchingOver', 'Verifying', 'CleaningUp', 'Succeeded']);
  await stack.bootedWithDataOf(onSource, target, 'db');
  await stack.runsOnlyOn('db', 'node-c');
  expect(await stack.holds('node-b', 'db')).toBe(false);
}

/**
 * web on node-b starts a slow live move to node-c, whose agent is killed mid-migration: the move
 * rolls back, the guest never stops on node-b, and node-c, once back, removes what it prepared.
 */
export async function targetAgentDies(stack: RealStack): Promise<void> {
  const source = stack.guest('node-b', 'web').setMark();
  await waitHeartbeat(stack.env, 'node-b', 'web', source.last()?.n ?? 0);
  // 4 MiB/s and no auto-converge: the migration cannot end before the dead agent's Lease does.
  const policy = { bandwidthMiBps: 4, allowAutoConverge: false, maxAttempts: 1 };
  await stack.env.apply(moveYaml('web-doomed', 'web', { mode: 'Live', target: { nodeName: 'node-c' }, policy }));
  await stack.migrating('web-doomed');
  await stack.env.fleet.kill(stack.env.fleet.agents.get('node-c'));
  const mr = await stack.env.waitForMove('web-doomed', TERMINAL, 180_000);
  stack.ended(mr, 'Failed');
  expect(historyText(mr).join('\n')).toContain('target host lost during Migrating');
  expect(mr.status?.conditions?.find((c) => c.type === 'RolledBack')).toMatchObject({ status: 'True' });
  await stack.runsOnlyOn('web', 'node-b');
  // The dead host comes back: it holds no copy that runs, and the guest never restarted. The
  // QEMU it had started to receive the guest outlived its agent; once that copy has looked left
  // over for the grace period (5 s here, 30 by default), the host removes it.
  await stack.env.fleet.restartAgent('node-c', { agentArgs: ['--leftover-grace-seconds', '5'] });
  await stack.env.waitFor('node-c agent back', async () => (await stack.env.hostInventory()).has('node-c'));
  await waitHeartbeat(stack.env, 'node-b', 'web', source.last()!.n);
  expect(await stack.env.runningOn('web')).toEqual(['node-b']);
  await stack.env.waitFor('node-c to remove its leftover copy of web', async () => !(await stack.holds('node-c', 'web')));
  expect(await stack.env.runningOn('web')).toEqual(['node-b']);
  expect(parseConsole(source.sinceMark()).boots).toEqual([]);
  continuousHeartbeats([source.sinceMark()]);
}
