// Recovering the VMs of a dead host end to end: a host dies (its agent SIGKILLed, its Node marked
// NotReady as the node lifecycle controller would), the evacuation waits — touching nothing — until
// an operator fences the node (out-of-service taint), then restarts shared-disk VMs from their disk
// and rebuilds local-disk VMs from their image. A host that comes back before it is fenced never
// has its VMs started twice; with --auto-evacuate-dead-hosts the evacuation creates itself.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { PlannedMove } from '../../src/api/types';
import {
  evacuationEvents,
  evacuationYaml,
  fence,
  getNode,
  killHost,
  listMoves,
  listVms,
  reviveHost,
  runningVms,
  waitAgentGone,
  waitForEvacuation,
} from '../support/evacuationHelpers';
import { kstatusOf } from '../support/kstatus';
import { startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(300_000);

const CLI = path.resolve(__dirname, '../../dist/cli/main.js');
const RESCUE = { nodeSelector: { role: 'rescue' } };
let env: VmoveEnv;

beforeAll(async () => {
  env = await startVmoveEnv({
    nodes: ['dead-1', 'dead-2', 'dead-3', { name: 'r1', labels: { role: 'rescue' } }, { name: 'r2', labels: { role: 'rescue' } }],
    controllerArgs: ['--dead-host-after-seconds', '2', '--auto-evacuate-dead-hosts'],
  });
});

afterAll(async () => {
  await env?.stop();
});

async function createAndWait(vms: [string, { node: string; storage?: 'Local'; running?: boolean }][]): Promise<void> {
  await env.apply(vms.map(([n, o]) => vmYaml(n, o)).join('---\n'));
  await env.waitFor(`${vms.length} VMs on their hosts`, async () => {
    const all = await listVms(env);
    return vms.every(([n, o]) => all.some((vm) => vm.metadata.name === n && vm.status?.nodeName === o.node && vm.status?.phase === (o.running === false ? 'Stopped' : 'Running')));
  }, 90_000);
}

/** The host dies and the controller can tell: agent gone past its Lease, Node not Ready. */
async function die(node: string): Promise<void> {
  await killHost(env, node);
  await waitAgentGone(env, node);
}

describe('a dead host', () => {
  const shared = ['s1', 's2'];
  beforeAll(async () => {
    await createAndWait([
      ['s1', { node: 'dead-1' }],
      ['s2', { node: 'dead-1' }],
      ['s3', { node: 'dead-1', running: false }],
      ['l1', { node: 'dead-1', storage: 'Local' }],
    ]);
    await die('dead-1');
  });

  test('without the out-of-service taint: waits, says why and how to fence, and touches no VM', async () => {
    await env.apply(evacuationYaml('rescue-dead-1', { nodeName: 'dead-1', target: RESCUE }));
    const e = await waitForEvacuation(env, 'rescue-dead-1', ['WaitingForFence']);
    expect(e.status?.hostState).toBe('Dead');
    const fenced = e.status?.conditions?.find((c) => c.type === 'Fenced');
    expect(fenced).toMatchObject({ status: 'False', reason: 'WaitingForFence' });
    expect(fenced?.message).toContain('kubectl taint nodes dead-1 node.kubernetes.io/out-of-service=nodeshutdown:NoExecute');
    expect(e.status?.conditions?.find((c) => c.type === 'Progressing')).toMatchObject({ status: 'False', reason: 'WaitingForFence' });
    // Only a person can move it on, so a Flux wait ends now with the how-to instead of timing out.
    expect(kstatusOf([e])[0]).toMatchObject({ status: 'Failed', message: e.status!.message });
    expect(e.status).toMatchObject({ total: 4, pending: 4, succeeded: 0, inProgress: 0 });

    // The plan says what would happen once fenced.
    const out = await promisify(execFile)(process.execPath, [CLI, 'plan', 'evacuate', 'dead-1', '--kubeconfig', env.cluster.kubeconfig, '--target-selector', 'role=rescue', '--dead-host-after-seconds', '2', '-o', 'json']);
    const plan = JSON.parse(out.stdout) as { hostState: string; message: string; plan: PlannedMove[] };
    expect(plan.hostState).toBe('Dead');
    expect(Object.fromEntries(plan.plan.map((p) => [p.vmName, [p.moveType, p.variant]]))).toEqual({
      s1: ['Rebuild', 'FromSharedDisk'],
      s2: ['Rebuild', 'FromSharedDisk'],
      s3: ['Rebuild', 'FromSharedDisk'],
      l1: ['Rebuild', 'FromImage'],
    });
    expect(plan.message).toContain('its VMs would be rebuilt only once it is dead and fenced');

    // Some time later: still nothing created, every VM where it was.
    await new Promise((r) => setTimeout(r, 4_000));
    expect(await listMoves(env)).toEqual([]);
    for (const vm of (await listVms(env)).filter((v) => ['s1', 's2', 's3', 'l1'].includes(v.metadata.name!))) {
      expect(vm.status).toMatchObject({ nodeName: 'dead-1', scheduledNode: 'dead-1' });
      expect(vm.status?.moveRef).toBeUndefined();
    }
    const running = await runningVms(env);
    for (const n of ['s1', 's2', 'l1']) expect(running.get(`default_${n}`)).toBeUndefined();
    expect((await evacuationEvents(env, 'rescue-dead-1')).map((ev) => ev.reason)).toContain('WaitingForFence');
  });

  test('fenced: shared-disk VMs restart from their disks, local-disk VMs are rebuilt from their image, and the status says their data was lost', async () => {
    await fence(env, 'dead-1');
    const e = await waitForEvacuation(env, 'rescue-dead-1', ['Succeeded', 'Failed'], 120_000);
    expect(e.status).toMatchObject({ phase: 'Succeeded', hostState: 'Dead', total: 4, succeeded: 4, failed: 0 });
    expect(e.status?.conditions?.find((c) => c.type === 'Fenced')).toMatchObject({ status: 'True', reason: 'OutOfServiceTaint' });
    expect(e.status?.message).toBe(
      'recovered the VMs of dead-1: 3 VMs restarted from their shared disks; 1 VM rebuilt from its image — the data on its local disks was lost; dead-1 stays cordoned while this HostEvacuation exists (delete it to uncordon)',
    );
    const rows = Object.fromEntries(e.status!.moves!.map((m) => [m.vmName, m]));
    expect(rows.l1).toMatchObject({ phase: 'Succeeded', moveType: 'Rebuild' });
    expect(rows.l1!.message).toMatch(/^rebuilt from its image: the data on its local disks was lost/);
    for (const n of ['s1', 's2', 's3']) expect(rows[n]).toMatchObject({ phase: 'Succeeded', moveType: 'Rebuild' });

    const moves = await listMoves(env, 'vmove.dev/evacuation=rescue-dead-1');
    expect(Object.fromEntries(moves.map((m) => [m.spec.vmName, [m.spec.mode, m.status?.variant]]))).toEqual({
      s1: ['Rebuild', 'FromSharedDisk'],
      s2: ['Rebuild', 'FromSharedDisk'],
      s3: ['Rebuild', 'FromSharedDisk'],
      l1: ['Rebuild', 'FromImage'],
    });
    // Each running VM runs once, on a rescue host; the stopped one is defined there, stopped.
    const running = await runningVms(env);
    for (const n of [...shared, 'l1']) expect(['r1', 'r2'].map((r) => [r])).toContainEqual(running.get(`default_${n}`));
    const inventory = await env.hostInventory();
    const s3 = [...inventory].filter(([, vms]) => vms.some((v) => v.id === 'default_s3'));
    expect(s3.map(([node, vms]) => [node, vms.find((v) => v.id === 'default_s3')!.state])).toEqual([[expect.stringMatching(/^r[12]$/), 'Stopped']]);
    const reasons = (await evacuationEvents(env, 'rescue-dead-1')).map((ev) => ev.reason);
    expect(reasons).toEqual(expect.arrayContaining(['WaitingForFence', 'Fenced', 'MoveCreated', 'LocalDataLost', 'Succeeded']));
    expect((await getNode(env, 'dead-1')).spec?.unschedulable).toBe(true);
  });
});

describe('a host that comes back before it is fenced', () => {
  test('nothing was rebuilt and nothing runs twice: its VMs are moved off it live instead', async () => {
    await createAndWait([
      ['m1', { node: 'dead-2' }],
      ['m2', { node: 'dead-2', storage: 'Local' }],
    ]);
    await die('dead-2');
    await env.apply(evacuationYaml('rescue-dead-2', { nodeName: 'dead-2', target: RESCUE }));
    await waitForEvacuation(env, 'rescue-dead-2', ['WaitingForFence']);
    expect(await listMoves(env, 'vmove.dev/evacuation=rescue-dead-2')).toEqual([]);

    await reviveHost(env, 'dead-2');
    const e = await waitForEvacuation(env, 'rescue-dead-2', ['Succeeded', 'Failed'], 120_000);
    expect(e.status).toMatchObject({ phase: 'Succeeded', hostState: 'Alive', succeeded: 2 });
    expect(e.status?.conditions?.find((c) => c.type === 'Fenced')).toMatchObject({ status: 'False', reason: 'HostReturned' });
    const moves = await listMoves(env, 'vmove.dev/evacuation=rescue-dead-2');
    expect(moves.map((m) => [m.spec.vmName, m.spec.mode, m.status?.moveType, m.status?.phase]).sort()).toEqual([
      ['m1', 'Auto', 'Live', 'Succeeded'],
      ['m2', 'Auto', 'Live', 'Succeeded'],
    ]);
    const running = await runningVms(env);
    for (const n of ['m1', 'm2']) expect(['r1', 'r2'].map((r) => [r])).toContainEqual(running.get(`default_${n}`));
    expect((await env.hostInventory()).get('dead-2')).toEqual([]);
    expect((await evacuationEvents(env, 'rescue-dead-2')).map((ev) => ev.reason)).toContain('HostReturned');
  });
});

describe('automatic evacuation (--auto-evacuate-dead-hosts)', () => {
  test('a dead host, once fenced, gets a HostEvacuation of its own that recovers its VMs', async () => {
    await createAndWait([['a1', { node: 'dead-3' }]]);
    await die('dead-3');
    // Dead but not fenced: nothing is created.
    await new Promise((r) => setTimeout(r, 6_000));
    expect((await env.kubectl(['get', 'hostevacuations', '-l', 'vmove.dev/auto-evacuation=true', '-o', 'name'])).stdout.trim()).toBe('');
    await fence(env, 'dead-3');
    const e = await waitForEvacuation(env, 'recover-dead-3-1', ['Succeeded', 'Failed'], 120_000);
    expect(e.metadata.labels?.['vmove.dev/auto-evacuation']).toBe('true');
    expect(e.spec).toMatchObject({ nodeName: 'dead-3', mode: 'Auto', cordon: true });
    expect(e.status).toMatchObject({ phase: 'Succeeded', succeeded: 1 });
    const running = await runningVms(env);
    expect(['r1', 'r2'].map((r) => [r])).toContainEqual(running.get('default_a1'));
    expect((await evacuationEvents(env, 'recover-dead-3-1')).map((ev) => ev.reason)).toContain('AutoEvacuation');
  });
});
