// The metrics as Prometheus would scrape them, during a real live move (real API server, the
// controller and agent processes, sim driver on a slow link): the move's own series on the leading
// controller while it runs and gone once it ended, the end counted and timed, the agents' operations
// counted, and a standby replica exporting no series of the cluster's objects.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { CA_CERT } from '../../src/cluster/agentPki';
import { freePort } from '../../src/cluster/ports';
import { agentFromLease, type LeaseObject } from '../../src/controller/clusterView';
import type { FleetProcess } from '../../src/local/fleet';
import { leasePath } from '../../src/kube/paths';
import { documentedMetrics } from '../support/metricsContract';
import { moveYaml, startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(240_000);

let env: VmoveEnv;
let leaderUrl: string;
let standbyUrl: string;
let standby: FleetProcess | undefined;
// 100 MiB/s link; simulated time 4× real time: a 4 GiB guest migrates for several seconds.
const slowLink = ['--sim-bandwidth-mibps', '100', '--sim-time-scale', '4'];

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** GET over HTTPS trusting the vmove CA only, as Prometheus is configured to scrape agents. */
function getWithVmoveCa(url: string): Promise<{ status: number; text: string }> {
  const ca = readFileSync(path.join(env.fleet.agentPkiDir, CA_CERT), 'utf8');
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      })
      .on('error', reject);
  });
}

/** The samples and the TYPE lines of one scrape (agents serve HTTPS, controllers plain HTTP). */
async function scrape(url: string): Promise<{ samples: Sample[]; types: Map<string, string> }> {
  const res = url.startsWith('https:') ? await getWithVmoveCa(`${url}/metrics`) : await fetch(`${url}/metrics`).then(async (r) => ({ status: r.status, text: await r.text() }));
  expect(res.status).toBe(200);
  const text = res.text;
  const samples = [...text.matchAll(/^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/gm)].map((m) => ({
    name: m[1]!,
    labels: Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!])),
    value: Number(m[3]),
  }));
  return { samples, types: new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!])) };
}

const find = (samples: Sample[], name: string, labels: Record<string, string> = {}) => samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
const OBJECT_LABELS = ['moverequest', 'hostevacuation', 'vm', 'node'];

async function agentUrl(node: string): Promise<string> {
  const leases = await env.api.get<{ items: LeaseObject[] }>(leasePath({ namespace: 'vmove-system' }));
  const a = leases.items.map((l) => agentFromLease(l, Date.now())).find((x) => x?.node === node);
  if (!a) throw new Error(`no agent lease for ${node}`);
  return a.endpoint;
}

beforeAll(async () => {
  const [leaderPort, standbyPort] = [await freePort(), await freePort()];
  leaderUrl = `http://127.0.0.1:${leaderPort}`;
  standbyUrl = `http://127.0.0.1:${standbyPort}`;
  env = await startVmoveEnv({
    nodes: ['node-a', 'node-b'],
    nodeDefaults: { agentArgs: slowLink },
    controllerArgs: ['--metrics-address', `127.0.0.1:${leaderPort}`, '--identity', 'metrics-leader'],
  });
  await env.waitFor('the first controller to lead', async () => find((await scrape(leaderUrl)).samples, 'vmove_controller_leader')[0]?.value === 1);
  // A second replica: it waits for the leader Lease, as a standby of a two-replica Deployment does.
  const leader = env.fleet.controller;
  standby = env.fleet.startController(['--metrics-address', `127.0.0.1:${standbyPort}`, '--identity', 'metrics-standby']);
  env.fleet.controller = leader;
  await env.waitFor('the standby to serve /metrics', async () => (await scrape(standbyUrl)).samples.length > 0);
});

afterAll(async () => {
  await env?.fleet.kill(standby, 'SIGTERM');
  await env?.stop();
});

test('a live move: its series on the leader while it migrates, the agents counting its operations, none on the standby; after it, the end counted and the series gone', async () => {
  await env.apply(vmYaml('big', { node: 'node-a', memory: '4Gi' }));
  await env.waitFor('big running on node-a', async () => {
    const vm = await env.vm('big');
    return vm?.status?.phase === 'Running' && vm.status.nodeName === 'node-a';
  });
  await env.apply(moveYaml('big-move', 'big', { target: { nodeName: 'node-b' } }));
  const move = { namespace: 'default', moverequest: 'big-move', vm: 'big', move_type: 'Live', source: 'node-a', target: 'node-b' };

  // While it migrates, the leader shows what status.progress shows, labelled by the move.
  const during = await env.waitFor('memory sent to show on the leader', async () => {
    const s = (await scrape(leaderUrl)).samples;
    return (find(s, 'vmove_move_memory_processed_bytes', move)[0]?.value ?? 0) > 0 ? s : undefined;
  });
  expect(find(during, 'vmove_move_memory_total_bytes', move)[0]?.value).toBe(4 * 1024 ** 3);
  expect(find(during, 'vmove_move_phase_start_time_seconds', { ...move, phase: 'Migrating' })).toHaveLength(1);
  expect(find(during, 'vmove_move_phase_timeout_seconds', { ...move, phase: 'Migrating' })[0]?.value).toBeGreaterThan(0);
  expect(find(during, 'vmove_move_attempt', move)[0]?.value).toBe(1);
  expect(find(during, 'vmove_moves', { phase: 'Migrating', move_type: 'Live' })[0]?.value).toBe(1);
  expect(find(during, 'vmove_agent_up', { node: 'node-a' })[0]?.value).toBe(1);
  expect(find(during, 'vmove_vms', { node: 'node-a', phase: 'Moving' }).length + find(during, 'vmove_vms', { node: 'node-a', phase: 'Running' }).length).toBe(1);
  const source = await scrape(await agentUrl('node-a'));
  expect(find(source.samples, 'vmove_agent_operations_in_flight', { kind: 'migrate' })[0]?.value).toBe(1);

  // The standby leads nothing and exports no object series, only its own runtime and leadership.
  const idle = (await scrape(standbyUrl)).samples;
  expect(find(idle, 'vmove_controller_leader')[0]?.value).toBe(0);
  expect(idle.filter((s) => OBJECT_LABELS.some((l) => l in s.labels) || s.name === 'vmove_moves')).toEqual([]);

  const mr = await env.waitForMove('big-move', ['Succeeded', 'Failed', 'Cancelled'], 120_000);
  expect(mr.status?.phase).toBe('Succeeded');
  const after = await env.waitFor('the move to be counted as finished', async () => {
    const s = (await scrape(leaderUrl)).samples;
    return find(s, 'vmove_moves_finished_total', { move_type: 'Live', phase: 'Succeeded' })[0]?.value === 1 ? s : undefined;
  });
  expect(after.filter((s) => s.labels.moverequest === 'big-move')).toEqual([]);
  expect(find(after, 'vmove_move_duration_seconds_count', { move_type: 'Live', phase: 'Succeeded' })[0]?.value).toBe(1);
  expect(find(after, 'vmove_move_downtime_seconds_count', { move_type: 'Live' })[0]?.value).toBe(1);
  expect(find(after, 'vmove_move_phase_transition_time_from_creation_seconds_count', { move_type: 'Live', phase: 'Succeeded' })[0]?.value).toBe(1);
  expect(find(after, 'vmove_vm_moves_total', { namespace: 'default', vm: 'big' })[0]?.value).toBe(1);
  const target = await scrape(await agentUrl('node-b'));
  expect(find(target.samples, 'vmove_agent_operations_total', { kind: 'completeIncoming', result: 'Succeeded' })[0]?.value).toBe(1);
  expect(find(target.samples, 'vmove_agent_vms', { state: 'Running' })[0]?.value).toBe(1);
  const sourceAfter = await scrape(await agentUrl('node-a'));
  expect(find(sourceAfter.samples, 'vmove_agent_operations_total', { kind: 'migrate', result: 'Succeeded' })[0]?.value).toBe(1);
  expect(find(sourceAfter.samples, 'vmove_agent_operations_in_flight', { kind: 'migrate' })[0]?.value).toBe(0);
  expect(find(sourceAfter.samples, 'vmove_agent_lease_renew_duration_seconds_count')[0]?.value).toBeGreaterThan(0);

  // Deleting the VM removes its move counter.
  await env.kubectl(['delete', 'moverequest', 'big-move']);
  await env.kubectl(['delete', 'virtualmachine', 'big', '--wait=false']);
  await env.waitFor('the VM series to go', async () => find((await scrape(leaderUrl)).samples, 'vmove_vm_moves_total', { vm: 'big' }).length === 0);
});

test('what the processes serve is what docs/metrics.md documents, with the same types', async () => {
  const doc = documentedMetrics();
  const served = [...(await scrape(leaderUrl)).types, ...(await scrape(await agentUrl('node-a'))).types];
  const wrong = served.filter(([name, type]) => doc.get(name) !== type).map(([name, type]) => `${name}: ${type}, documented ${doc.get(name) ?? 'nowhere'}`);
  expect(wrong).toEqual([]);
  expect([...doc.keys()].filter((name) => !served.some(([n]) => n === name))).toEqual([]);
});
