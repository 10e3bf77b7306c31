// Each agent lists and watches only the VirtualMachines placed on its node (field selectors on the
// CRD's selectableFields status.nodeName and status.scheduledNode), as its /metrics counts them:
// changes to VMs on other nodes never reach it, a VM moved away leaves its view with one DELETED, a
// VM placed on its node but not yet reported arrives. A third agent with --watch-all-vms (how
// agents watched before, kept for comparison) receives every change. No controller runs: the test
// writes the VMs' status itself, and no agent holds a copy of them, so no agent writes either.
import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { CA_CERT } from '../../src/cluster/agentPki';
import { agentFromLease, type LeaseObject } from '../../src/controller/clusterView';
import { leasePath, vmovePath } from '../../src/kube/paths';
import { startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(180_000);

let env: VmoveEnv;
let ca: string;
const endpoints = new Map<string, string>();

interface Received {
  events: number;
  bytes: Record<string, number>;
}

/** What the agent of `node` says its VirtualMachine caches received. */
async function received(node: string): Promise<Received> {
  const text = await new Promise<string>((resolve, reject) => {
    https
      .get(`${endpoints.get(node)}/metrics`, { ca }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics of ${node}: ${res.statusCode}`))));
      })
      .on('error', reject);
  });
  const events = /^vmove_agent_watch_events_total\{kind="VirtualMachine"\} (\S+)$/m.exec(text);
  const bytes = Object.fromEntries([...text.matchAll(/^vmove_agent_watch_received_bytes_total\{kind="VirtualMachine",via="(\w+)"\} (\S+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
  return { events: events ? Number(events[1]) : 0, bytes };
}

const vmPath = (name: string, status = false) => vmovePath('virtualmachines', { namespace: 'default', name, ...(status ? { subresource: 'status' as const } : {}) });
const setStatus = (name: string, status: Record<string, unknown>) => env.api.mergePatch(vmPath(name, true), { status });

beforeAll(async () => {
  env = await startVmoveEnv({ nodes: ['node-a', 'node-b', { name: 'node-all', agentArgs: ['--watch-all-vms'] }], controller: false });
  ca = readFileSync(path.join(env.fleet.agentPkiDir, CA_CERT), 'utf8');
  const leases = await env.api.get<{ items: LeaseObject[] }>(leasePath({ namespace: 'vmove-system' }));
  for (const l of leases.items) {
    const a = agentFromLease(l, Date.now());
    if (a) endpoints.set(a.node, a.endpoint);
  }
  // Every view listed once: from here on each change it should see arrives as a watch event.
  for (const node of ['node-a', 'node-b', 'node-all']) await env.waitFor(`${node} to list its VMs`, async () => ((await received(node)).bytes.list ?? 0) > 0);
});

afterAll(async () => {
  await env?.stop();
});

test('an agent receives the changes of the VMs on its node and none of the VMs on other nodes', async () => {
  const before = { a: await received('node-a'), b: await received('node-b'), all: await received('node-all') };
  expect([before.a.events, before.b.events, before.all.events]).toEqual([0, 0, 0]);

  // A VM on node-b, changed 20 times.
  await env.apply(vmYaml('elsewhere'));
  await setStatus('elsewhere', { nodeName: 'node-b', phase: 'Running' });
  for (let i = 1; i <= 20; i++) await setStatus('elsewhere', { cpu: i });
  // A VM on node-a, then moved to node-b (it leaves node-a's view: one DELETED) and changed 5 times there.
  await env.apply(vmYaml('here'));
  await setStatus('here', { nodeName: 'node-a', phase: 'Running' });
  await setStatus('here', { nodeName: 'node-b' });
  for (let i = 1; i <= 5; i++) await setStatus('here', { cpu: i });
  // Last, a VM placed on node-a that no agent reported yet: node-a's second selector. Its event
  // comes after all the others, so once node-a counted it, any of theirs would have come too.
  await env.apply(vmYaml('placed'));
  await setStatus('placed', { scheduledNode: 'node-a', phase: 'Pending' });

  // created 3 + 2 + 1 status writes; 'elsewhere' 21, 'here' 7, 'placed' 1
  const all = await env.waitFor('the --watch-all-vms agent to receive every change', async () => {
    const r = await received('node-all');
    return r.events >= 32 ? r : undefined;
  });
  expect(all.events).toBe(32);
  const a = await env.waitFor("node-a to receive the placed VM's event", async () => {
    const r = await received('node-a');
    return r.events >= 3 ? r : undefined;
  });
  const b = await env.waitFor('node-b to receive the changes of its VMs', async () => {
    const r = await received('node-b');
    return r.events >= 27 ? r : undefined;
  });

  // node-a: 'here' arriving, 'here' leaving, 'placed' arriving — nothing of 'elsewhere', nothing after 'here' left.
  expect(a.events).toBe(3);
  // node-b: 'elsewhere' from its nodeName on (21), 'here' from its arrival on (6); never 'placed'.
  expect(b.events).toBe(27);
  expect(a.bytes.watch ?? 0).toBeLessThan(b.bytes.watch ?? 0);
  expect(b.bytes.watch ?? 0).toBeLessThan(all.bytes.watch ?? 0);
  // Nothing fetched by name: no agent holds a copy of these VMs.
  expect([a.bytes.get, b.bytes.get, all.bytes.get]).toEqual([undefined, undefined, undefined]);
});
