// The move engine end to end on the real API server with the sim driver: requests applied with
// kubectl, carried out by the real controller and agent processes, checked as a user sees them
// (status, events) and as the hosts see them (where the VM runs).
import { kstatusOf } from '../support/kstatus';
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

test('cold move of a VM on local storage copies its disk and leaves nothing on the source', async () => {
  await env.apply(vmYaml('db', { node: 'node-a', storage: 'Local' }));
  await vmRunningOn('db', 'node-a');
  await env.apply(moveYaml('db-cold', 'db', { mode: 'Cold', target: { nodeName: 'node-b' } }));
  const mr = await env.waitForMove('db-cold', ['Succeeded', 'Failed', 'Cancelled']);
  expect(mr.status).toMatchObject({ phase: 'Succeeded', moveType: 'Cold', variant: 'DiskCopy' });
  expect(phases(mr)).toEqual(['Pending', 'Scheduling', 'StoppingSource', 'CopyingDisks', 'PreparingTarget', 'SwitchingOver', 'Verifying', 'CleaningUp', 'Succeeded']);
  await vmRunningOn('db', 'node-b');
  const inventory = await env.hostInventory();
  expect(inventory.get('node-a')?.some((v) => v.id === 'default_db')).toBe(false);
});

test('a move with resize goes cold and the VM runs with the new size on the target', async () => {
  await env.apply(moveYaml('db-resize', 'db', { target: { nodeName: 'node-a' }, resources: { cpu: 2, memory: '512Mi' } }));
  const mr = await env.waitForMove('db-resize', ['Succeeded', 'Failed', 'Cancelled']);
  expect(mr.status).toMatchObject({ phase: 'Succeeded', moveType: 'Cold', variant: 'DiskCopy' });
  expect(mr.status?.reason).toContain('resizes the VM');
  await env.waitFor('db to report its new size', async () => {
    const vm = await env.vm('db');
    return vm?.status?.nodeName === 'node-a' && vm.status.cpu === 2 && vm.status.memory === '512Mi';
  });
  expect(await env.runningOn('db')).toEqual(['node-a']);
});

test('resources alone resize in place by hotplug when the host has room', async () => {
  await env.apply(moveYaml('web-grow', 'web', { resources: { cpu: 3, memory: '1Gi' } }));
  const mr = await env.waitForMove('web-grow', ['Succeeded', 'Failed', 'Cancelled']);
  expect(mr.status).toMatchObject({ phase: 'Succeeded', moveType: 'ResizeInPlace', variant: 'Hotplug', sourceNode: 'node-b', targetNode: 'node-b' });
  expect(phases(mr)).toEqual(['Pending', 'Scheduling', 'Resizing', 'Verifying', 'Succeeded']);
  await env.waitFor('web to report 3 CPUs and 1Gi', async () => {
    const vm = await env.vm('web');
    return vm?.status?.cpu === 3 && vm.status.memory === '1Gi' && vm.status.nodeName === 'node-b';
  });
});

test('rebuild of a VM with local disks starts it from its image elsewhere and says its data is lost', async () => {
  await env.apply(moveYaml('db-rebuild', 'db', { mode: 'Rebuild', target: { nodeName: 'node-b' } }));
  const mr = await env.waitForMove('db-rebuild', ['Succeeded', 'Failed', 'Cancelled']);
  expect(mr.status).toMatchObject({ phase: 'Succeeded', moveType: 'Rebuild', variant: 'FromImage', targetNode: 'node-b' });
  expect(mr.status?.reason).toContain('data is lost');
  await vmRunningOn('db', 'node-b');
});

test('a full target fails the move with the reason and leaves the VM where it runs', async () => {
  await env.apply(vmYaml('big', { node: 'node-a', memory: '2Gi' }));
  await vmRunningOn('big', 'node-a');
  await env.apply(moveYaml('big-to-c', 'big', { target: { nodeName: 'node-c' } }));
  const mr = await env.waitForMove('big-to-c', ['Succeeded', 'Failed', 'Cancelled']);
  expect(mr.status?.phase).toBe('Failed');
  expect(mr.status?.placement?.rejected).toEqual([{ nodeName: 'node-c', reason: 'not enough memory: needs 2Gi, 1Gi free of 1Gi' }]);
  expect(mr.status?.message).toContain('node-c: not enough memory');
  expect(await env.runningOn('big')).toEqual(['node-a']);
  expect((await env.vm('big'))?.status?.moveRef).toBeUndefined();
});

test('a cordoned target fails the move; automatic placement avoids it', async () => {
  expect((await env.kubectl(['cordon', 'node-c'])).code).toBe(0);
  try {
    await env.apply(moveYaml('web-to-c', 'web', { target: { nodeName: 'node-c' } }));
    const mr = await env.waitForMove('web-to-c', ['Succeeded', 'Failed', 'Cancelled']);
    expect(mr.status?.phase).toBe('Failed');
    expect(mr.status?.placement?.rejected).toEqual([{ nodeName: 'node-c', reason: 'is cordoned' }]);
    expect(await env.runningOn('web')).toEqual(['node-b']);

    await env.apply(moveYaml('web-auto', 'web'));
    const auto = await env.waitForMove('web-auto', ['Succeeded', 'Failed', 'Cancelled']);
    expect(auto.status).toMatchObject({ phase: 'Succeeded', targetNode: 'node-a' });
    expect(auto.status?.placement?.rejected).toEqual(expect.arrayContaining([{ nodeName: 'node-c', reason: 'is cordoned' }]));
  } finally {
    await env.kubectl(['uncordon', 'node-c']);
  }
});

test('two requests for one VM: the second waits for the first, then runs', async () => {
  await env.apply(moveYaml('web-first', 'web', { target: { nodeName: 'node-b' } }) + '\n---\n' + moveYaml('web-second', 'web', { target: { nodeName: 'node-a' } }));
  const second = await env.waitFor('web-second to wait for the VM', async () => {
    const mr = await env.move('web-second');
    const c = mr?.status?.conditions?.find((x) => x.type === 'Progressing');
    return c?.reason === 'WaitingForVM' ? c : undefined;
  });
  expect(second.message).toContain('being moved by MoveRequest web-first');
  expect((await env.waitForMove('web-first', ['Succeeded', 'Failed'])).status?.phase).toBe('Succeeded');
  expect((await env.waitForMove('web-second', ['Succeeded', 'Failed'])).status?.phase).toBe('Succeeded');
  await vmRunningOn('web', 'node-a');
});

test('Flux and kstatus see how each move ended: Current on success, Failed at once on failure or cancel', async () => {
  // Objects of real moves above, judged by the kstatus library Flux's health checks use.
  await env.apply(moveYaml('web-cancelled', 'web', { cancel: true }));
  await env.waitForMove('web-cancelled', ['Cancelled']);
  const names = ['web-live', 'ghost-move', 'big-to-c', 'web-cancelled'];
  const verdicts = kstatusOf(await Promise.all(names.map((n) => env.move(n))));
  expect(verdicts.map((v) => [v.name, v.status])).toEqual([
    ['web-live', 'Current'],
    ['ghost-move', 'Failed'],
    ['big-to-c', 'Failed'],
    ['web-cancelled', 'Failed'],
  ]);
  expect(verdicts[1]!.message).toBe('VirtualMachine ghost does not exist in namespace default');
  expect(verdicts[2]!.message).toContain('node-c: not enough memory');
  // A wait for the outcome ends at once on a failure instead of running into its timeout.
  const wait = await env.kubectl(['wait', '--for=condition=Stalled', '--timeout=5s', 'moverequest/big-to-c']);
  expect(wait.code).toBe(0);
});

test('a move under way is InProgress for kstatus, saying what it does', async () => {
  await env.apply(moveYaml('big-to-b', 'big', { target: { nodeName: 'node-b' } }));
  const seen = await env.waitFor('big-to-b under way', async () => {
    const mr = await env.move('big-to-b');
    return mr?.status?.phase && !['Pending', 'Succeeded', 'Failed', 'Cancelled'].includes(mr.status.phase) ? mr : undefined;
  });
  const [v] = kstatusOf([seen]);
  expect(v!.status).toBe('InProgress');
  expect(v!.message).toMatch(new RegExp(`^(${seen.status!.phase}|rolling back)`));
  expect((await env.waitForMove('big-to-b', ['Succeeded', 'Failed'])).status?.phase).toBe('Succeeded');
  expect(kstatusOf([await env.move('big-to-b')])[0]!.status).toBe('Current');
});
