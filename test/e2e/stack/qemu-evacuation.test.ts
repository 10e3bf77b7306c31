// Host evacuation with real guests: three QEMU guests on node-a, one HostEvacuation applied with
// kubectl, and the host is emptied live — each guest runs on at its new host without restarting
// (its own serial console says so), each runs on exactly one host, and node-a stays cordoned.
import type { HostEvacuation, MoveRequest } from '../../../src/api/types';
import { vmovePath } from '../../../src/kube/paths';
import { GuestConsole, parseConsole, startRealEnv, vmId, waitHeartbeat } from '../../support/e2eFleet';
import { vmYaml, type VmoveEnv } from '../../support/vmoveEnv';

jest.setTimeout(600_000);

let env: VmoveEnv;
const GUESTS = ['alpha', 'beta', 'gamma'];

beforeAll(async () => {
  env = await startRealEnv('qemu');
}, 180_000);

afterAll(async () => {
  await env?.stop();
}, 120_000);

test('a live host with three real guests is emptied live; every guest runs on, once', async () => {
  for (const [i, name] of GUESTS.entries()) {
    // One guest on local disks: its disk travels by block migration.
    await env.apply(vmYaml(name, { node: 'node-a', storage: i === 2 ? 'Local' : 'SharedFile', memory: '192Mi', kernelArgs: 'vmove.dirty_mib=8 vmove.disk_counter=1' }));
  }
  for (const name of GUESTS) {
    await env.waitFor(`${name} running`, async () => (await env.vm(name))?.status?.phase === 'Running', 180_000);
    await waitHeartbeat(env, 'node-a', name, 2, 180_000);
  }
  const lastOnSource = new Map(GUESTS.map((name) => [name, new GuestConsole(env, 'node-a', vmId(name)).last()!.n]));

  await env.apply(
    ['apiVersion: vmove.dev/v1alpha1', 'kind: HostEvacuation', 'metadata:', '  name: drain-node-a', 'spec:', '  nodeName: node-a', '  mode: Live', '  maxParallel: 2', ''].join('\n'),
  );
  const done = await env.waitFor(
    'the evacuation to end',
    async () => {
      const e = await env.api.find<HostEvacuation>(vmovePath('hostevacuations', { name: 'drain-node-a' }));
      return e?.status?.phase && ['Succeeded', 'Failed', 'Cancelled'].includes(e.status.phase) ? e : undefined;
    },
    480_000,
  );
  expect(done.status).toMatchObject({ phase: 'Succeeded', total: 3, succeeded: 3, failed: 0 });

  const moves = (await env.api.get<{ items: MoveRequest[] }>(vmovePath('moverequests', { namespace: 'default' }))).items;
  expect(moves.map((m) => [m.spec.vmName, m.status?.phase, m.status?.moveType]).sort()).toEqual([
    ['alpha', 'Succeeded', 'Live'],
    ['beta', 'Succeeded', 'Live'],
    ['gamma', 'Succeeded', 'Live'],
  ]);
  expect(moves.find((m) => m.spec.vmName === 'gamma')?.status?.variant).toBe('BlockMigration');

  // The host is empty and stays cordoned; each guest runs on exactly one other host.
  const node = JSON.parse((await env.kubectl(['get', 'node', 'node-a', '-o', 'json'])).stdout) as { spec: { unschedulable?: boolean } };
  expect(node.spec.unschedulable).toBe(true);
  expect((await env.hostInventory()).get('node-a') ?? []).toEqual([]);
  for (const name of GUESTS) {
    const on = await env.runningOn(name);
    expect(on).toHaveLength(1);
    expect(on[0]).not.toBe('node-a');
    // Its console on the new host: no boot, and a count that went on from where node-a left it.
    const target = new GuestConsole(env, on[0]!, vmId(name));
    await waitHeartbeat(env, on[0]!, name, lastOnSource.get(name)!);
    const seen = parseConsole(target.text());
    expect({ name, boots: seen.boots }).toEqual({ name, boots: [] });
    expect(seen.heartbeats[0]!.n).toBeGreaterThan(lastOnSource.get(name)!);
  }
});
