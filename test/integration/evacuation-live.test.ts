// Evacuating live hosts end to end: HostEvacuations applied with kubectl, carried out by the real
// controller and one real agent per node (sim driver), checked as a user sees them (status,
// events, `vmove plan`) and as the hosts see them (where each VM runs), while sampling the
// MoveRequests to check no limit is ever exceeded.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { HostEvacuation, MoveRequest, PlannedMove } from '../../src/api/types';
import { vmovePath } from '../../src/kube/paths';
import {
  evacuationEvents,
  evacuationYaml,
  getEvacuation,
  getNode,
  listMoves,
  listVms,
  maxIn,
  maxOf,
  runningVms,
  sampleMoves,
  sampleOf,
  waitForEvacuation,
  type MoveSample,
} from '../support/evacuationHelpers';
import { kstatusOf } from '../support/kstatus';
import { startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(300_000);

const LIMITS = { parallelMoves: 3, outboundPerNode: 3, inboundPerNode: 2 };
const TARGETS = ['t1', 't2', 't3', 't4'];
const CLI = path.resolve(__dirname, '../../dist/cli/main.js');

let env: VmoveEnv;

beforeAll(async () => {
  env = await startVmoveEnv({
    nodes: [
      'src-a',
      'src-b',
      'src-c',
      // Its moves take ~2 s on the wire, longer than a sim move verifies (~1 s): with maxParallel 1,
      // one move of src-d streams while the one before verifies, so the test can fill a target between moves.
      { name: 'src-d', agentArgs: ['--sim-bandwidth-mibps', '256'] },
      ...TARGETS.map((name) => ({ name, labels: { role: 'target' } })),
      { name: 'fill-1', labels: { pool: 'fill' }, memory: '2Gi' },
      { name: 'fill-2', labels: { pool: 'fill' }, memory: '2Gi' },
    ],
    nodeDefaults: { cpu: 32 },
    controllerArgs: ['--parallel-moves', String(LIMITS.parallelMoves), '--outbound-per-node', String(LIMITS.outboundPerNode), '--inbound-per-node', String(LIMITS.inboundPerNode)],
  });
});

afterAll(async () => {
  await env?.stop();
});

async function createVms(names: string[], o: Parameters<typeof vmYaml>[1]): Promise<void> {
  await env.apply(names.map((n) => vmYaml(n, o)).join('---\n'));
}

async function waitRunning(names: string[], node: string): Promise<void> {
  await env.waitFor(`${names.length} VMs running on ${node}`, async () => {
    const vms = await listVms(env);
    return names.every((n) => vms.some((vm) => vm.metadata.name === n && vm.status?.nodeName === node && (vm.status.phase === 'Running' || vm.status.phase === 'Stopped')));
  }, 90_000);
}

/** Every named VM runs on exactly one host, and none on `node`. */
async function expectEachOnOneHostOff(names: string[], node: string): Promise<Map<string, string[]>> {
  const running = await runningVms(env);
  for (const n of names) {
    const where = running.get(`default_${n}`);
    expect({ vm: n, where }).toEqual({ vm: n, where: [expect.any(String)] });
    expect(where![0]).not.toBe(node);
  }
  return running;
}

const names = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(2, '0')}`);
const srcA = names('a', 17);
const FLAKY = 'a-flaky';
const LOCAL = 'a-local';
const STOPPED = 'a-stopped';
const allA = [...srcA, FLAKY, LOCAL, STOPPED];

describe('a live host with 20 VMs', () => {
  beforeAll(async () => {
    await createVms(srcA, { node: 'src-a' });
    // The biggest VM goes first, onto t1 (all targets equal, names break ties): there it fails, transiently.
    await env.apply(vmYaml(FLAKY, { node: 'src-a', memory: '2Gi', annotations: { 'sim.vmove.dev/fail-transient-at': 'prepareIncoming@t1' } }));
    await env.apply(vmYaml(LOCAL, { node: 'src-a', storage: 'Local' }));
    await env.apply(vmYaml(STOPPED, { node: 'src-a', running: false }));
    await waitRunning(allA, 'src-a');
  });

  let dryPlan: PlannedMove[] = [];

  test('a dry run shows the whole plan and moves nothing; `vmove plan` prints the same plan', async () => {
    await env.apply(evacuationYaml('plan-src-a', { nodeName: 'src-a', dryRun: true, target: { nodeSelector: { role: 'target' } } }));
    const e = await waitForEvacuation(env, 'plan-src-a', ['Succeeded']);
    dryPlan = e.status!.plan!;
    expect(dryPlan).toHaveLength(20);
    expect(dryPlan.map((p) => p.order)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(dryPlan[0]).toMatchObject({ vmName: FLAKY, targetNode: 't1', moveType: 'Live', variant: 'SharedStorage' });
    expect(dryPlan.find((p) => p.vmName === LOCAL)).toMatchObject({ moveType: 'Live', variant: 'BlockMigration' });
    expect(dryPlan.find((p) => p.vmName === STOPPED)).toMatchObject({ moveType: 'Cold', variant: 'SharedStorage' });
    for (const p of dryPlan) {
      expect(TARGETS).toContain(p.targetNode);
      // Every other node was considered, and each rejection says why.
      expect(p.rejected?.map((r) => r.nodeName).sort()).toEqual(['fill-1', 'fill-2', 'src-b', 'src-c', 'src-d']);
      expect(p.rejected?.every((r) => r.reason === `does not match nodeSelector role=target`)).toBe(true);
    }
    expect(e.status!.message).toBe('dry run: 20 of 20 VMs on src-a have a target; nothing was moved and src-a was not cordoned');
    expect(kstatusOf([e])[0]).toMatchObject({ status: 'Current' }); // Flux: a dry run is done once planned
    expect(await listMoves(env)).toEqual([]);
    expect((await getNode(env, 'src-a')).spec?.unschedulable).toBeFalsy();

    const json = await promisify(execFile)(process.execPath, [CLI, 'plan', 'evacuate', 'src-a', '--kubeconfig', env.cluster.kubeconfig, '--target-selector', 'role=target', '-o', 'json']);
    const cli = JSON.parse(json.stdout) as { node: string; hostState: string; mode: string; plan: PlannedMove[] };
    expect(cli).toMatchObject({ node: 'src-a', hostState: 'Alive', mode: 'Auto' });
    expect(cli.plan).toEqual(dryPlan);
    const table = await promisify(execFile)(process.execPath, [CLI, 'plan', 'evacuate', 'src-a', '--kubeconfig', env.cluster.kubeconfig, '--target-selector', 'role=target']);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toBe('Plan to evacuate src-a (host Alive, mode Auto): 20 VMs, 20 with a target');
    expect(lines[2]).toMatch(/^ORDER\s+VM\s+ACTION\s+STRATEGY\s+TARGET\s+TYPE\s+VARIANT\s+REASON$/);
    expect(lines[3]).toMatch(new RegExp(`^1\\s+default/${FLAKY}\\s+LiveMove\\s+LiveMigrateIfPossible\\s+t1\\s+Live\\s+SharedStorage\\s+mode Auto: the VM runs`));
    expect(table.stdout).toContain('rejected src-b: does not match nodeSelector role=target');
    expect(await listMoves(env)).toEqual([]);
  });

  test('evacuation: cordoned, at most maxParallel moves and never above the limits, the failed move retried elsewhere, node empty', async () => {
    const sampler = sampleMoves(env);
    await env.apply(evacuationYaml('drain-src-a', { nodeName: 'src-a', maxParallel: 4, target: { nodeSelector: { role: 'target' } } }));
    let e: HostEvacuation;
    let samples: MoveSample[];
    try {
      e = await waitForEvacuation(env, 'drain-src-a', ['Succeeded', 'Failed', 'Cancelled'], 240_000);
    } finally {
      samples = await sampler.stop();
    }
    expect(e.status).toMatchObject({ phase: 'Succeeded', hostState: 'Alive', total: 20, succeeded: 20, failed: 0, inProgress: 0, pending: 0 });
    expect(e.status!.message).toBe('src-a is empty: 20 VMs moved off (19 live, 1 cold); src-a stays cordoned while this HostEvacuation exists (delete it to uncordon)');

    // Limits: sampled all along.
    expect(samples.length).toBeGreaterThan(20);
    expect(maxOf(samples, (s) => s.inFlightByEvacuation.get('drain-src-a') ?? 0)).toBeLessThanOrEqual(4);
    expect(maxOf(samples, (s) => s.openByEvacuation.get('drain-src-a') ?? 0)).toBeGreaterThanOrEqual(2);
    expect(maxOf(samples, (s) => s.inFlight)).toBeLessThanOrEqual(LIMITS.parallelMoves);
    expect(maxOf(samples, (s) => maxIn(s.outbound))).toBeLessThanOrEqual(LIMITS.outboundPerNode);
    expect(maxOf(samples, (s) => maxIn(s.inbound))).toBeLessThanOrEqual(LIMITS.inboundPerNode);

    // Cordoned by vmove, and it says so.
    expect((await getNode(env, 'src-a')).spec?.unschedulable).toBe(true);
    expect(e.status!.conditions?.find((c) => c.type === 'Cordoned')).toMatchObject({ status: 'True', reason: 'CordonedByVmove' });
    expect(e.status!.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'NodeEmpty' });

    // The flaky VM: its first MoveRequest failed on t1 after the engine's own attempts; the second went elsewhere.
    const flakyMoves = (await listMoves(env, `vmove.dev/evacuation=drain-src-a,vmove.dev/vm=${FLAKY}`)).sort((a, b) => a.metadata.name!.localeCompare(b.metadata.name!));
    expect(flakyMoves.map((m) => [m.metadata.name, m.status?.phase, m.status?.targetNode])).toEqual([
      [`drain-src-a-${FLAKY}-1`, 'Failed', 't1'],
      [`drain-src-a-${FLAKY}-2`, 'Succeeded', expect.not.stringMatching(/^(t1|src-a)$/)],
    ]);
    expect(e.status!.moves!.find((m) => m.vmName === FLAKY)).toMatchObject({ name: `drain-src-a-${FLAKY}-2`, phase: 'Succeeded', attempt: 2 });
    // Every MoveRequest is owned and labelled.
    const all = await listMoves(env, 'vmove.dev/evacuation=drain-src-a');
    expect(all).toHaveLength(21);
    for (const mr of all) expect(mr.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'HostEvacuation', name: 'drain-src-a', uid: e.metadata.uid, controller: true })]);

    // The node is empty as its host sees it, and every VM runs on exactly one target.
    const inventory = await env.hostInventory();
    expect(inventory.get('src-a')).toEqual([]);
    await expectEachOnOneHostOff(allA.filter((n) => n !== STOPPED), 'src-a');
    const vms = await listVms(env);
    for (const vm of vms.filter((v) => allA.includes(v.metadata.name!))) {
      expect(TARGETS).toContain(vm.status?.scheduledNode);
      expect(vm.status?.moveRef).toBeUndefined();
    }
    const stoppedOn = [...inventory].filter(([, list]) => list.some((v) => v.id === `default_${STOPPED}`)).map(([n]) => n);
    expect(stoppedOn).toHaveLength(1);
    expect(TARGETS).toContain(stoppedOn[0]);

    const reasons = (await evacuationEvents(env, 'drain-src-a')).map((ev) => ev.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Cordoned', 'MoveCreated', 'Retrying', 'Succeeded']));
  });
});

describe('two evacuations at once', () => {
  const bVms = names('b', 12);
  const cVms = names('c', 2);

  /** When a move left Pending for the last time (its last Scheduling began). */
  const startedAt = (mr: MoveRequest): number => Math.max(...(mr.status?.history ?? []).filter((h) => h.phase === 'Scheduling').map((h) => Date.parse(h.startedAt)));

  test('share the limits: a late, small evacuation gets its share of the slots instead of queueing behind a big one', async () => {
    await createVms(bVms, { node: 'src-b', memory: '512Mi' });
    await createVms(cVms, { node: 'src-c', memory: '512Mi' });
    await waitRunning(bVms, 'src-b');
    await waitRunning(cVms, 'src-c');
    const sampler = sampleMoves(env);
    // B would run all 12 moves at once; the cluster runs 3. C comes once B holds every slot.
    await env.apply(evacuationYaml('drain-src-b', { nodeName: 'src-b', maxParallel: 12, target: { nodeSelector: { role: 'target' } } }));
    await env.waitFor('drain-src-b to hold every slot', async () => sampleOf(await listMoves(env, 'vmove.dev/evacuation=drain-src-b')).inFlight === LIMITS.parallelMoves, 60_000);
    await env.apply(evacuationYaml('drain-src-c', { nodeName: 'src-c', maxParallel: 2, target: { nodeSelector: { role: 'target' } } }));
    let samples: MoveSample[];
    try {
      await waitForEvacuation(env, 'drain-src-b', ['Succeeded', 'Failed'], 240_000);
      await waitForEvacuation(env, 'drain-src-c', ['Succeeded', 'Failed'], 240_000);
    } finally {
      samples = await sampler.stop();
    }
    expect((await getEvacuation(env, 'drain-src-b'))!.status).toMatchObject({ phase: 'Succeeded', succeeded: 12 });
    expect((await getEvacuation(env, 'drain-src-c'))!.status).toMatchObject({ phase: 'Succeeded', succeeded: 2 });
    expect(maxOf(samples, (s) => s.inFlight)).toBeLessThanOrEqual(LIMITS.parallelMoves);
    expect(maxOf(samples, (s) => maxIn(s.outbound))).toBeLessThanOrEqual(LIMITS.outboundPerNode);
    expect(maxOf(samples, (s) => maxIn(s.inbound))).toBeLessThanOrEqual(LIMITS.inboundPerNode);

    // Once C runs a move, B never again holds every slot while a move of C waits: each slot that
    // frees goes to the evacuation with fewer moves in flight. First come, first served would hand
    // most of them to B's many waiting moves.
    const inFlight = (s: MoveSample, e: string): number => s.inFlightByEvacuation.get(e) ?? 0;
    const cStarted = samples.findIndex((s) => inFlight(s, 'drain-src-c') > 0);
    expect(cStarted).toBeGreaterThanOrEqual(0);
    const cWaiting = samples.slice(cStarted).filter((s) => (s.waitingByEvacuation.get('drain-src-c') ?? 0) > 0);
    // C's second move waited at least one look (how many depends on the machine's speed).
    expect(cWaiting.length).toBeGreaterThan(0);
    expect(cWaiting.filter((s) => inFlight(s, 'drain-src-b') >= LIMITS.parallelMoves)).toEqual([]);
    // And B kept moves waiting all along: C's turns were real choices.
    const bMoves = await listMoves(env, 'vmove.dev/evacuation=drain-src-b');
    const cMoves = await listMoves(env, 'vmove.dev/evacuation=drain-src-c');
    const cRunning = Math.max(...cMoves.map(startedAt));
    expect(bMoves.filter((m) => startedAt(m) > cRunning).length).toBeGreaterThan(2);
    await expectEachOnOneHostOff(bVms, 'src-b');
    await expectEachOnOneHostOff(cVms, 'src-c');
  });
});

describe('a target fills up mid-way', () => {
  const dVms = names('d', 6);

  test('the VMs not moved yet are re-planned onto the target that still has room', async () => {
    await createVms(dVms, { node: 'src-d', memory: '512Mi' });
    await waitRunning(dVms, 'src-d');
    // Two 2 GiB targets: the plan alternates fill-1, fill-2, fill-1, …
    await env.apply(evacuationYaml('drain-src-d', { nodeName: 'src-d', maxParallel: 1, target: { nodeSelector: { pool: 'fill' } } }));
    await env.waitFor('two VMs moved off src-d', async () => ((await getEvacuation(env, 'drain-src-d'))?.status?.succeeded ?? 0) >= 2, 120_000);
    // Something else takes 1 GiB of fill-1.
    await env.apply(vmYaml('hog', { node: 'fill-1', memory: '1Gi' }));
    const e = await waitForEvacuation(env, 'drain-src-d', ['Succeeded', 'Failed'], 180_000);
    expect(e.status).toMatchObject({ phase: 'Succeeded', succeeded: 6, failed: 0 });
    const running = await expectEachOnOneHostOff(dVms, 'src-d');
    expect(running.get('default_hog')).toEqual(['fill-1']);
    // fill-1 holds the hog and at most two of the evacuated VMs (2 GiB): the rest went to fill-2.
    const onFill1 = dVms.filter((n) => running.get(`default_${n}`)?.[0] === 'fill-1');
    expect(onFill1.length).toBeLessThanOrEqual(2);
    expect(dVms.filter((n) => running.get(`default_${n}`)?.[0] === 'fill-2').length).toBeGreaterThanOrEqual(4);
  });
});

describe('cancel and delete', () => {
  test('cancel mid-way: moves in flight roll back or finish, each VM on exactly one host, the node uncordoned', async () => {
    const vms = names('t1vm', 3);
    await createVms(vms, { node: 't1', memory: '3Gi' });
    await waitRunning(vms, 't1');
    await env.apply(evacuationYaml('drain-t1', { nodeName: 't1', maxParallel: 2, target: { nodeSelector: { role: 'target' } } }));
    await env.waitFor('a move of drain-t1 in flight', async () => (await listMoves(env, 'vmove.dev/evacuation=drain-t1')).some((m) => m.status?.phase && !['Pending', 'Succeeded', 'Failed', 'Cancelled'].includes(m.status.phase)), 60_000);
    expect((await getNode(env, 't1')).spec?.unschedulable).toBe(true);
    const r = await env.kubectl(['patch', 'hostevacuation', 'drain-t1', '--type=merge', '-p', '{"spec":{"cancel":true}}']);
    expect(r.code).toBe(0);
    const e = await waitForEvacuation(env, 'drain-t1', ['Cancelled'], 120_000);
    expect(kstatusOf([e])[0]).toMatchObject({ status: 'Failed', message: e.status!.message });
    expect(e.status!.conditions?.find((c) => c.type === 'Cordoned')).toMatchObject({ status: 'False', reason: 'UncordonedByVmove' });
    expect((await getNode(env, 't1')).spec?.unschedulable).toBeFalsy();
    const moves = await listMoves(env, 'vmove.dev/evacuation=drain-t1');
    expect(moves.length).toBeGreaterThan(0);
    expect(moves.every((m) => ['Succeeded', 'Cancelled'].includes(m.status?.phase ?? ''))).toBe(true);
    // Whatever each move reached, its VM runs once: on its target if the move finished, else still on t1.
    const running = await runningVms(env);
    for (const m of moves) {
      const expected = m.status?.phase === 'Succeeded' ? [m.status.targetNode] : ['t1'];
      expect({ vm: m.spec.vmName, where: running.get(`default_${m.spec.vmName}`) }).toEqual({ vm: m.spec.vmName, where: expected });
      expect((await env.vm(m.spec.vmName))?.status?.moveRef).toBeUndefined();
    }
    for (const n of vms) expect(running.get(`default_${n}`)).toHaveLength(1);
    expect((await evacuationEvents(env, 'drain-t1')).map((ev) => ev.reason)).toEqual(expect.arrayContaining(['Cordoned', 'Cancelling', 'Uncordoned', 'Cancelled']));
  });

  test('delete mid-way: its MoveRequests are removed (each stopped first), the node uncordoned, the evacuation gone', async () => {
    const vms = names('t2vm', 3);
    await createVms(vms, { node: 't2', memory: '3Gi' });
    await waitRunning(vms, 't2');
    await env.apply(evacuationYaml('drain-t2', { nodeName: 't2', maxParallel: 2, target: { nodeSelector: { role: 'target' } } }));
    await env.waitFor('drain-t2 to create its moves', async () => (await listMoves(env, 'vmove.dev/evacuation=drain-t2')).length > 0, 60_000);
    expect((await getNode(env, 't2')).spec?.unschedulable).toBe(true);
    const r = await env.kubectl(['delete', 'hostevacuation', 'drain-t2', '--wait=false']);
    expect(r.code).toBe(0);
    await env.waitFor('drain-t2 to be gone', async () => !(await env.api.find(vmovePath('hostevacuations', { name: 'drain-t2' }))), 120_000);
    expect(await listMoves(env, 'vmove.dev/evacuation=drain-t2')).toEqual([]);
    expect((await getNode(env, 't2')).spec?.unschedulable).toBeFalsy();
    const running = await runningVms(env);
    for (const n of vms) expect(running.get(`default_${n}`)).toHaveLength(1);
  });
});
