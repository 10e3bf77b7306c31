// The exporter (src/controller/objectMetrics/exporter.ts) over caches that change as the
// controller changes them: series come and go with their objects, observations count once, a
// standby exports nothing, and — the cardinality test — a thousand moves driven to their ends
// leave the series where they started.
import { Registry } from 'prom-client';
import type { HostEvacuation, MoveRequest, VirtualMachine } from '../../../../src/api/types';
import type { AgentInfo } from '../../../../src/controller/clusterView';
import { nextSample, ObjectMetrics } from '../../../../src/controller/objectMetrics/exporter';
import { MoveRequestFixture } from './fixtures';

type Spec = ConstructorParameters<typeof MoveRequestFixture>[1];

/** The caches, as plain maps the test changes. */
class Caches {
  moves = new Map<string, MoveRequest>();
  vms = new Map<string, VirtualMachine>();
  evacuations = new Map<string, HostEvacuation>();
  agents: AgentInfo[] = [{ node: 'node-a', alive: true, endpoint: 'http://a', capabilities: {} as never, expiredForSeconds: 0 }];
  objects = () => ({ moves: [...this.moves.values()], vms: [...this.vms.values()], evacuations: [...this.evacuations.values()], agents: this.agents });
}

const vmOf = (mr: MoveRequest): VirtualMachine => ({
  apiVersion: 'vmove.dev/v1alpha1',
  kind: 'VirtualMachine',
  metadata: { name: mr.spec.vmName, namespace: mr.metadata.namespace, uid: `vm-${mr.metadata.uid}` },
  spec: { image: 'i', cpu: 2, memory: '2Gi' },
  status: { nodeName: 'node-a', phase: 'Running' },
});

interface Sample {
  name: string;
  type: string;
  values: { labels: Record<string, string | number>; value: number; metricName?: string }[];
}

const scrape = async (r: Registry): Promise<Sample[]> => (await r.getMetricsAsJSON()) as unknown as Sample[];
const OBJECT_LABELS = ['moverequest', 'hostevacuation', 'node', 'vm'];
/** Series that name an object: what must go when the object does. */
const objectSeries = (s: Sample[]) => s.flatMap((m) => m.values).filter((v) => OBJECT_LABELS.some((l) => l in v.labels)).length;
const allSeries = (s: Sample[]) => s.flatMap((m) => m.values).length;
const value = (s: Sample[], name: string, labels: Record<string, string> = {}) =>
  s
    .find((m) => m.name === name)
    ?.values.filter((v) => (v.metricName ?? name) === name && Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((a, v) => a + v.value, 0) ?? 0;
const count = (s: Sample[], histogram: string, labels: Record<string, string> = {}) =>
  s
    .find((m) => m.name === histogram)
    ?.values.filter((v) => v.metricName === `${histogram}_count` && Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((a, v) => a + v.value, 0) ?? 0;

function world() {
  const caches = new Caches();
  const registry = new Registry();
  const exporter = new ObjectMetrics(registry, caches.objects);
  const put = (f: MoveRequestFixture) => {
    const mr = f.object;
    caches.moves.set(mr.metadata.uid!, mr);
    exporter.moveChanged(mr);
  };
  const addVm = (mr: MoveRequest) => {
    const vm = vmOf(mr);
    caches.vms.set(vm.metadata.uid!, vm);
    exporter.vmChanged(vm);
  };
  const remove = (mr: MoveRequest) => {
    caches.moves.delete(mr.metadata.uid!);
    exporter.moveDeleted(mr);
    const vm = vmOf(mr);
    caches.vms.delete(vm.metadata.uid!);
    exporter.vmDeleted(vm);
  };
  return { caches, registry, exporter, put, addVm, remove };
}

test('per-move series appear while the move runs and go when it ends; the end is counted once however often the caches are read', async () => {
  const w = world();
  w.exporter.start();
  const f = new MoveRequestFixture('m1', { type: 'Live', variant: 'SharedStorage', vmRunning: true });
  w.addVm(f.object);
  w.put(f);
  w.exporter.sync();
  const before = await scrape(w.registry);
  expect(value(before, 'vmove_vm_moves_total', { vm: 'vm-m1' })).toBe(0);
  expect(before.find((m) => m.name === 'vmove_vm_moves_total')?.values).toHaveLength(1);
  f.runTo('Migrating');
  w.put(f);
  w.exporter.sync();
  const running = await scrape(w.registry);
  expect(running.find((m) => m.name === 'vmove_move_memory_total_bytes')?.values).toEqual([
    { labels: { namespace: 'ns', moverequest: 'm1', vm: 'vm-m1', move_type: 'Live', source: 'node-a', target: 'node-b' }, value: 0 },
  ]);
  expect(value(running, 'vmove_vm_moves_total', { vm: 'vm-m1' })).toBe(1);
  f.runToEnd();
  for (let i = 0; i < 3; i++) {
    w.put(f);
    w.exporter.sync();
  }
  const done = await scrape(w.registry);
  expect(done.find((m) => m.name === 'vmove_move_memory_total_bytes')?.values).toEqual([]);
  expect(value(done, 'vmove_moves_finished_total', { move_type: 'Live', phase: 'Succeeded' })).toBe(1);
  expect(count(done, 'vmove_move_duration_seconds', { move_type: 'Live', phase: 'Succeeded' })).toBe(1);
  expect(count(done, 'vmove_move_downtime_seconds', { move_type: 'Live' })).toBe(1);
  expect(count(done, 'vmove_move_phase_transition_time_from_creation_seconds')).toBe(8);
  expect(value(done, 'vmove_vm_moves_total', { vm: 'vm-m1' })).toBe(1);
  expect(value(done, 'vmove_moves', { phase: 'Succeeded', move_type: 'Live' })).toBe(1);
});

test('a replica that starts leading counts nothing the caches already show, only what happens after', async () => {
  const w = world();
  const ended = new MoveRequestFixture('old', { type: 'Cold', variant: 'SharedStorage', vmRunning: true }).runToEnd();
  const running = new MoveRequestFixture('mid', { type: 'Cold', variant: 'SharedStorage', vmRunning: true }).runTo('PreparingTarget');
  for (const f of [ended, running]) {
    w.addVm(f.object);
    w.put(f);
  }
  // Not leading yet: nothing exported but the metrics' names.
  w.exporter.sync();
  expect(objectSeries(await scrape(w.registry))).toBe(0);
  w.exporter.start();
  let s = await scrape(w.registry);
  expect(value(s, 'vmove_moves_finished_total')).toBe(0);
  expect(count(s, 'vmove_move_phase_transition_time_from_creation_seconds')).toBe(0);
  expect(s.find((m) => m.name === 'vmove_move_attempt')?.values.map((v) => v.labels.moverequest)).toEqual(['mid']);
  running.runToEnd();
  w.put(running);
  w.exporter.sync();
  s = await scrape(w.registry);
  expect(value(s, 'vmove_moves_finished_total')).toBe(1);
  // SwitchingOver, Verifying, CleaningUp, Succeeded: the phases entered after this replica began.
  expect(count(s, 'vmove_move_phase_transition_time_from_creation_seconds')).toBe(4);
  // A replica that stops leading removes every object series at once.
  w.exporter.stop();
  expect(objectSeries(await scrape(w.registry))).toBe(0);
});

test('transfer rates: bytes gained over the time between two progress samples; a new step starts from 0', () => {
  const a = nextSample(undefined, { memoryProcessedBytes: 100, diskProcessedBytes: 0 }, 1_000);
  expect(a.rates).toEqual({ memoryBytesPerSecond: 0, diskBytesPerSecond: 0 });
  const b = nextSample(a, { memoryProcessedBytes: 2_100, diskProcessedBytes: 500 }, 3_000);
  expect(b.rates).toEqual({ memoryBytesPerSecond: 1_000, diskBytesPerSecond: 250 });
  expect(nextSample(b, { memoryProcessedBytes: 2_100, diskProcessedBytes: 500 }, 9_000)).toBe(b);
  expect(nextSample(b, { memoryProcessedBytes: 10, diskProcessedBytes: 0 }, 10_000).rates).toEqual({ memoryBytesPerSecond: 0, diskBytesPerSecond: 0 });
});

const MIX: Spec[] = [
  { type: 'Live', variant: 'SharedStorage', vmRunning: true },
  { type: 'Live', variant: 'BlockMigration', vmRunning: true },
  { type: 'Cold', variant: 'DiskCopy', vmRunning: true },
  { type: 'Rebuild', variant: 'FromImage', vmRunning: true },
  { type: 'ResizeInPlace', variant: 'Restart', vmRunning: true },
];

test('cardinality: 1,000 moves (50 in flight at a time, every tenth rolled back and retried, some cancelled) and 20 evacuations leave the object series at their baseline, and never exceed a bound proportional to what exists', async () => {
  const TOTAL = 1_000;
  const PARALLEL = 50;
  const w = world();
  w.exporter.start();
  const baseline = objectSeries(await scrape(w.registry));
  const baselineAll = allSeries(await scrape(w.registry));
  let made = 0;
  let peak = 0;
  let peakAll = 0;
  let entered = 0;
  const flying: MoveRequestFixture[] = [];
  const evacuation = (i: number): HostEvacuation => ({
    apiVersion: 'vmove.dev/v1alpha1',
    kind: 'HostEvacuation',
    metadata: { name: `drain-${i}`, uid: `e${i}` },
    spec: { nodeName: `node-${i}` },
    status: { phase: 'Evacuating', pending: 1, inProgress: 1, startTime: '2030-01-01T00:00:00Z' },
  });
  for (let tick = 0; made < TOTAL || flying.length > 0; tick++) {
    while (flying.length < PARALLEL && made < TOTAL) {
      const f = new MoveRequestFixture(`m${made}`, MIX[made % MIX.length]!);
      made++;
      w.addVm(f.object);
      w.put(f);
      flying.push(f);
    }
    if (tick % 10 === 0 && tick / 10 < 20) w.caches.evacuations.set(`e${tick / 10}`, evacuation(tick / 10));
    if (tick % 10 === 5 && (tick - 5) / 10 < 20) w.caches.evacuations.delete(`e${(tick - 5) / 10}`);
    for (const f of [...flying]) {
      const n = Number(f.name.slice(1));
      if (n % 10 === 3 && f.d.phase === 'PreparingTarget' && f.d.ctx.attempt === 1) f.fail(true);
      else if (n % 25 === 7 && f.d.phase === 'PreparingTarget') f.cancel();
      else f.stepOnce();
      w.put(f);
      if (['Succeeded', 'Failed', 'Cancelled'].includes(f.d.phase)) {
        entered += new Set(f.status!.history!.filter((h, i, all) => i === 0 || all[i - 1]!.phase !== h.phase || all[i - 1]!.attempt !== h.attempt).map((h) => h.startedAt + h.phase)).size;
        // The user (or the evacuation) deletes the finished request, and later the VM.
        w.remove(f.object);
        flying.splice(flying.indexOf(f), 1);
      }
    }
    w.exporter.sync();
    const s = await scrape(w.registry);
    const now = objectSeries(s);
    const all = allSeries(s);
    peak = Math.max(peak, now);
    peakAll = Math.max(peakAll, all);
    // 15 series per move in flight (memory/disk ×3, rates ×3, iteration, rung, attempt, start, phase start, timeout)
    // + 1 per existing VM (vmove_vm_moves_total) + 1 vmove_vms per node/phase + 6 per evacuation + the agent.
    const bound = baseline + 15 * flying.length + w.caches.vms.size + 6 * 6 + 6 * w.caches.evacuations.size + w.caches.agents.length;
    expect(now).toBeLessThanOrEqual(bound);
  }
  // The evacuations still there are deleted too.
  w.caches.evacuations.clear();
  w.exporter.sync();
  const end = await scrape(w.registry);
  const after = objectSeries(end);
  console.log(`cardinality: ${TOTAL} moves, ${PARALLEL} in flight: object series baseline ${baseline}, peak ${peak}, after ${after}; all series baseline ${baselineAll}, peak ${peakAll}, after ${allSeries(end)}`);
  expect(after).toBe(baseline);
  expect(w.caches.moves.size).toBe(0);
  // Each end and each phase entered counted exactly once.
  expect(value(end, 'vmove_moves_finished_total')).toBe(TOTAL);
  expect(count(end, 'vmove_move_duration_seconds')).toBe(TOTAL);
  expect(count(end, 'vmove_move_phase_transition_time_from_creation_seconds')).toBe(entered);
  expect(value(end, 'vmove_move_retries_total')).toBe(TOTAL / 10);
  expect(value(end, 'vmove_move_rollbacks_total', { reason: 'StepFailed' })).toBe(TOTAL / 10);
  expect(value(end, 'vmove_move_rollbacks_total', { reason: 'Cancelled' })).toBeGreaterThan(0);
});
