// Issue 15 on real guests (qemu driver, TCG): a live move applied the moment the VM shows Running
// — its guest still booting — succeeds on its first attempt: it waits in Pending for the guest's
// first heartbeat (or, past the bound, is verified by what can be seen), never rolled back for a
// heartbeat the source never showed.
import { GUEST_READY } from '../../../src/api/types';
import { historyText, RealStack, TERMINAL, waitHeartbeat } from '../../support/e2eFleet';
import { moveYaml, vmYaml } from '../../support/vmoveEnv';

jest.setTimeout(400_000);

let stack: RealStack;

beforeAll(async () => {
  stack = await RealStack.start('qemu');
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 120_000);

test('a live move applied right after the VM appears succeeds on its first attempt, and history says how the guest was judged', async () => {
  await stack.env.apply(vmYaml('fresh', { node: 'node-a', storage: 'Local', kernelArgs: 'vmove.disk_counter=1' }));
  await stack.env.waitFor('fresh to show Running on node-a', async () => {
    const vm = await stack.env.vm('fresh');
    return vm?.status?.phase === 'Running' && vm.status.nodeName === 'node-a';
  }, 180_000);
  await stack.env.apply(moveYaml('fresh-live', 'fresh', { mode: 'Live', target: { nodeName: 'node-b' } }));
  const mr = await stack.env.waitForMove('fresh-live', TERMINAL, 360_000);
  stack.ended(mr, 'Succeeded');
  expect(mr.status?.attempt).toBe(1);
  expect(mr.status?.history?.some((h) => h.phase === 'RollingBack')).toBe(false);
  const history = historyText(mr).join('\n');
  // The start says what the source showed and what the target was held to; Verifying what it found.
  expect(history).toMatch(/the guest on node-a is (ready|still booting)/);
  expect(history).toMatch(/Verifying: (guest heartbeat \d+ goes on from \d+ on the source|the guest, not ready on the source, (heartbeats here|runs here))/);
  await waitHeartbeat(stack.env, 'node-b', 'fresh', 1);
  await stack.runsOnlyOn('fresh', 'node-b');
  await stack.env.waitFor('fresh reported ready on node-b', async () => (await stack.env.vm('fresh'))?.status?.conditions?.find((c) => c.type === GUEST_READY && c.status === 'True'), 60_000);
});
