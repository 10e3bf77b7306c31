// The guest's readiness on the real API server with the sim driver: a VM's host reports whether
// its guest is up (GuestReady, status.guest, the Guest column), and a live move applied right
// after the VM appeared waits in Pending while the guest boots, then succeeds on its first attempt,
// its history saying what the source showed and what the target was held to.
import { GUEST_READY } from '../../src/api/types';
import { SIM_ANNOTATIONS } from '../../src/drivers/sim';
import { moveYaml, startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(180_000);

let env: VmoveEnv;

beforeAll(async () => {
  env = await startVmoveEnv({ nodes: [{ name: 'node-a' }, { name: 'node-b' }] });
});

afterAll(async () => {
  await env?.stop();
});

const guestReady = async (name: string) => (await env.vm(name))?.status?.conditions?.find((c) => c.type === GUEST_READY);

test('a live move of a VM whose guest still boots waits for it with the reason, then succeeds on its first attempt', async () => {
  // The sim guest prints its first heartbeat 15 s after it boots.
  await env.apply(vmYaml('fresh', { node: 'node-a', annotations: { [SIM_ANNOTATIONS.bootSeconds]: '15' } }));
  const booting = await env.waitFor('fresh to run, its guest booting', async () => {
    const vm = await env.vm('fresh');
    const c = await guestReady('fresh');
    return vm?.status?.phase === 'Running' && c?.status === 'False' ? c : undefined;
  });
  expect(booting).toMatchObject({ reason: 'Booting' });
  // Running says the hypervisor runs it; the Guest column says the guest is not up yet.
  const row = await env.kubectl(['get', 'vmv', 'fresh', '--no-headers', '-o', 'custom-columns=PHASE:.status.phase,GUEST:.status.conditions[?(@.type=="GuestReady")].status']);
  expect(row.stdout.trim().split(/\s+/)).toEqual(['Running', 'False']);

  await env.apply(moveYaml('fresh-live', 'fresh', { mode: 'Live', target: { nodeName: 'node-b' } }));
  const waiting = await env.waitFor('fresh-live to wait for the guest', async () => {
    const c = (await env.move('fresh-live'))?.status?.conditions?.find((x) => x.type === 'Progressing');
    return c?.reason === 'GuestBooting' ? c : undefined;
  });
  expect(waiting.message).toMatch(/^the guest on node-a is still booting: the live move waits for its first heartbeat, until \S+ at the latest$/);
  expect((await env.move('fresh-live'))?.status?.phase).toBe('Pending');

  const mr = await env.waitForMove('fresh-live', ['Succeeded', 'Failed', 'Cancelled'], 90_000);
  expect(mr.status).toMatchObject({ phase: 'Succeeded', attempt: 1 });
  const lines = (mr.status?.history ?? []).map((h) => `${h.phase}: ${h.message ?? ''}`);
  expect(lines).toEqual(
    expect.arrayContaining([
      expect.stringMatching(/^Scheduling: the move waited \d+ s for it to boot; the guest on node-a is ready .*: after the switch-over it must heartbeat on the target past its last heartbeat on the source within 15 s$/),
      expect.stringMatching(/^CleaningUp: .*Verifying: guest heartbeat \d+ goes on from \d+ on the source/),
    ]),
  );
  expect(mr.status?.history?.some((h) => h.phase === 'RollingBack')).toBe(false);
  expect(await env.runningOn('fresh')).toEqual(['node-b']);

  // After the move its new host reports the guest: ready, since it first became ready on node-a.
  const vm = await env.waitFor('fresh to be reported ready on node-b', async () => {
    const v = await env.vm('fresh');
    const c = v?.status?.conditions?.find((x) => x.type === GUEST_READY);
    return v?.status?.nodeName === 'node-b' && !v.status.moveRef && c?.status === 'True' ? v : undefined;
  });
  expect(vm.status?.guest).toMatchObject({ readySince: expect.any(String), heartbeat: expect.any(Number), heartbeatTime: expect.any(String) });
});
