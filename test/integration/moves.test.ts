// The move engine end to end on the real API server with the sim driver: requests applied with
// kubectl, carried out by the real controller and agent processes, checked as a user sees them
// (status, events) and as the hosts see them (where the VM runs).
import { moveYaml, startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(180_000);

let env: VmoveEnv;

beforeAll(async () => {
  env = await startVmoveEnv({
    nodes: [
      { name: 'node-a', labels: { zone: 'east' } },
      { name: 'node-b', labels: { zone: 'west' } },
      { name: 'node-c', labels: { zone: 'west' }, memory: '1Gi' },
    ],
  });
});

afterAll(async () => {
  await env?.stop();
});

async function vmRunningOn(name: string, node: string): Promise<void> {
  await env.waitFor(`VM ${name} running on ${node}`, async () => {
    const vm = await env.vm(name);
    return vm?.status?.phase === 'Running' && vm.status.nodeName === node;
  });
  expect(await env.runningOn(name)).toEqual([node]);
}

const phases = (mr: { status?: { history?: { phase: string }[] } }): string[] => [...new Set((mr.status?.history ?? []).map((h) => h.phase))];

test('a new VM is placed, defined and started by its host', async () => {
  await env.apply(vmYaml('web', { node: 'node-a' }));
  await vmRunningOn('web', 'node-a');
  const vm = await env.vm('web');
  expect(vm?.status).toMatchObject({ scheduledNode: 'node-a', cpu: 1, memory: '256Mi' });
});

test('live move over shared storage: every step in history, the VM on exactly the target', async () => {
  await env.apply(moveYaml('web-live', 'web', { target: { nodeName: 'node-b' } }));
  const mr = await env.waitForMove('web-live', ['Succeeded', 'Failed', 'Cancelled']);
  expect(mr.status).toMatchObject({ phase: 'Succeeded', moveType: 'Live', variant: 'SharedStorage', sourceNode: 'node-a', targetNode: 'node-b', attempt: 1 });
  expect(phases(mr)).toEqual(['Pending', 'Scheduling', 'PreparingTarget', 'Migrating', 'SwitchingOver', 'Verifying', 'CleaningUp', 'Succeeded']);
  expect(mr.status?.progress?.percent).toBe(100);
  expect(mr.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  await vmRunningOn('web', 'node-b');
  const vm = await env.vm('web');
  expect(vm?.status?.moveRef).toBeUndefined();
  const events = await env.kubectl(['get', 'events', '--field-selector', 'involvedObject.name=web-live', '-o', 'jsonpath={.items[*].reason}']);
  expect(events.stdout).toContain('Succeeded');
});

test('an unknown VM fails with a reason and touches nothing', async () => {
  await env.apply(moveYaml('ghost-move', 'ghost'));
  const mr = await env.waitForMove('ghost-move', ['Failed']);
  expect(mr.status?.message).toBe('VirtualMachine ghost does not exist in namespace default');
});
