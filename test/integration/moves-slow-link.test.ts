// Moves that take long enough to interfere with: hosts on a slow simulated link, so a test can
// cancel a migration, kill an agent in the middle of one, or watch the convergence ladder climb.
import { rungsClimbed } from '../../src/machines/ladder';
import { moveYaml, startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(240_000);

let env: VmoveEnv;
// 100 MiB/s link; simulated time runs 4× real time so a 4 GiB guest migrates in ~10 s.
const slowLink = ['--sim-bandwidth-mibps', '100', '--sim-time-scale', '4'];

beforeAll(async () => {
  env = await startVmoveEnv({ nodes: ['node-a', 'node-b', 'node-c'], nodeDefaults: { agentArgs: slowLink } });
});

afterAll(async () => {
  await env?.stop();
});

const historyText = (mr: { status?: { history?: { phase: string; message?: string }[] } }): string[] =>
  (mr.status?.history ?? []).map((h) => `${h.phase}${h.message ? `: ${h.message}` : ''}`);

async function placedRunning(name: string, node: string): Promise<void> {
  await env.waitFor(`${name} running on ${node}`, async () => {
    const vm = await env.vm(name);
    return vm?.status?.phase === 'Running' && vm.status.nodeName === node;
  });
}

test('cancel in the middle of a migration rolls back: the VM runs on the source only', async () => {
  await env.apply(vmYaml('big', { node: 'node-a', memory: '4Gi' }));
  await placedRunning('big', 'node-a');
  await env.apply(moveYaml('big-move', 'big', { target: { nodeName: 'node-b' } }));
  await env.waitFor('migration to be under way', async () => {
    const mr = await env.move('big-move');
    return mr?.status?.phase === 'Migrating' && (mr.status.progress?.memoryProcessedBytes ?? 0) > 0;
  });
  expect((await env.kubectl(['patch', 'moverequest', 'big-move', '--type=merge', '-p', '{"spec":{"cancel":true}}'])).code).toBe(0);
  const mr = await env.waitForMove('big-move', ['Succeeded', 'Failed', 'Cancelled']);
  expect(mr.status?.phase).toBe('Cancelled');
  expect(historyText(mr).join('\n')).toContain('cancel requested during Migrating: rolling back');
  expect(mr.status?.conditions?.find((c) => c.type === 'Cancelled')).toMatchObject({ status: 'True' });
  expect(await env.runningOn('big')).toEqual(['node-a']);
  const onB = (await env.hostInventory()).get('node-b') ?? [];
  expect(onB.some((v) => v.id === 'default_big')).toBe(false);
});

test('the target agent dies mid-migration: the move rolls back and the VM keeps running on the source', async () => {
  await env.apply(moveYaml('big-doomed', 'big', { target: { nodeName: 'node-c' }, policy: { maxAttempts: 1 } }));
  await env.waitFor('migration to be under way', async () => {
    const mr = await env.move('big-doomed');
    return mr?.status?.phase === 'Migrating' && (mr.status.progress?.memoryProcessedBytes ?? 0) > 0;
  });
  await env.fleet.kill(env.fleet.agents.get('node-c'));
  // The VM never stops running on the source, not even while the target's fate is unknown.
  const during = await env.waitFor('the move to roll back', async () => {
    const mr = await env.move('big-doomed');
    return mr?.status?.phase === 'RollingBack' || mr?.status?.phase === 'Failed' ? mr : undefined;
  });
  expect(during.status?.phase).toMatch(/RollingBack|Failed/);
  expect(await env.runningOn('big')).toEqual(['node-a']);
  const mr = await env.waitForMove('big-doomed', ['Succeeded', 'Failed', 'Cancelled'], 90_000);
  expect(mr.status?.phase).toBe('Failed');
  expect(mr.status?.conditions?.find((c) => c.type === 'RolledBack')).toMatchObject({ status: 'True' });
  expect(await env.runningOn('big')).toEqual(['node-a']);
  // Its host reports it Running again (no longer Moving) once the move lets go of it.
  await env.waitFor('big reported Running on node-a', async () => {
    const s = (await env.vm('big'))?.status;
    return s?.nodeName === 'node-a' && s.phase === 'Running';
  });
  // The dead host comes back: it holds no copy that runs, and it removes the copy it had
  // prepared once that copy has looked left over for the grace period (5 s here, 30 by default).
  await env.fleet.restartAgent('node-c', { agentArgs: [...slowLink, '--leftover-grace-seconds', '5'] });
  await env.waitFor('node-c agent back', async () => (await env.hostInventory()).has('node-c'));
  expect(await env.runningOn('big')).toEqual(['node-a']);
  await env.waitFor('node-c to remove its leftover copy of big', async () => !((await env.hostInventory()).get('node-c') ?? []).some((v) => v.id === 'default_big'));
  const events = await env.kubectl(['get', 'events', '--field-selector', 'involvedObject.kind=VirtualMachine,involvedObject.name=big,reason=LeftoverRemoved', '-o', 'jsonpath={.items[*].message}']);
  expect(events.stdout).toContain('node-c removed its incoming copy of the VM (definition and local disks): the VM runs on node-a');
  expect(await env.runningOn('big')).toEqual(['node-a']);
});

test('a guest dirtying faster than the link converges by climbing the ladder, past the rungs that cannot help, each in history', async () => {
  await env.apply(
    vmYaml('busy', {
      node: 'node-a',
      memory: '1Gi',
      annotations: { 'sim.vmove.dev/dirty-rate-mibps': '160', 'sim.vmove.dev/working-set-mib': '384' },
    }),
  );
  await placedRunning('busy', 'node-a');
  await env.apply(moveYaml('busy-move', 'busy', { target: { nodeName: 'node-b' }, policy: { maxDowntimeMs: 300, allowAutoConverge: true } }));
  const mr = await env.waitForMove('busy-move', ['Succeeded', 'Failed', 'Cancelled'], 180_000);
  const story = historyText(mr);
  expect(mr.status?.phase).toBe('Succeeded');
  // More downtime could not carry what stays dirty at this link's speed: straight to auto-converge.
  expect(rungsClimbed(story)).toEqual(['auto-converge']);
  expect(story.find((l) => l.includes('convergence ladder'))).toMatch(/passed over max downtime 150 ms, max downtime 300 ms: at least \d+ MiB stays dirty after each pass/);
  expect(await env.runningOn('busy')).toEqual(['node-b']);
});

test('without auto-converge or post-copy the same guest cannot converge: rolled back, still on the source', async () => {
  await env.apply(moveYaml('busy-stuck', 'busy', { target: { nodeName: 'node-a' }, policy: { maxDowntimeMs: 300, allowAutoConverge: false, maxAttempts: 1 } }));
  const mr = await env.waitForMove('busy-stuck', ['Succeeded', 'Failed', 'Cancelled'], 180_000);
  expect(mr.status?.phase).toBe('Failed');
  expect(mr.status?.message).toContain('did not converge on the last rung (max downtime 300 ms)');
  expect(await env.runningOn('busy')).toEqual(['node-b']);
});
