// The cluster's objects as series (src/controller/objectMetrics/series.ts): what a scrape of the
// leading controller shows for moves, evacuations, agents and VMs.
import type { HostEvacuation, VirtualMachine } from '../../../../src/api/types';
import { agentSeries, clusterSeries, evacuationSeries, moveSeries, movesByPhase, phaseEnteredAt, vmSeries, type Series } from '../../../../src/controller/objectMetrics/series';
import { MoveRequestFixture } from './fixtures';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** name{labels} = value, sorted: how a scrape reads. */
const text = (series: Series[]): string[] =>
  series.map((s) => `${s.metric}{${Object.entries(s.labels).map(([k, v]) => `${k}="${v}"`).join(',')}} ${s.value}`).sort();

test('a live move while it migrates: every per-move series, labelled by namespace, request, VM, type, source and target', () => {
  const f = new MoveRequestFixture('m1', { type: 'Live', variant: 'SharedStorage', vmRunning: true }).runTo('Migrating');
  f.progress({ memoryProcessedBytes: 512 * MiB, memoryRemainingBytes: 1536 * MiB, memoryTotalBytes: 2 * GiB, iteration: 1, dirtyRateBytesPerSecond: 8 * MiB });
  const mr = f.object;
  const entered = Date.parse(mr.status!.history!.findLast((h) => h.phase === 'Migrating')!.startedAt) / 1000;
  const started = Date.parse(mr.status!.startTime!) / 1000;
  const l = 'moverequest="m1",move_type="Live",namespace="ns",source="node-a",target="node-b",vm="vm-m1"';
  const sorted = (s: string) => s.replace(/\{([^}]*)\}/, (_, inner: string) => `{${inner.split(',').sort().join(',')}}`);
  expect(text(moveSeries(mr, { memoryBytesPerSecond: 256 * MiB, diskBytesPerSecond: 0 })).map(sorted)).toEqual(
    [
      `vmove_move_attempt{${l}} 1`,
      `vmove_move_dirty_memory_rate_bytes{${l}} ${8 * MiB}`,
      `vmove_move_disk_processed_bytes{${l}} 0`,
      `vmove_move_disk_remaining_bytes{${l}} 0`,
      `vmove_move_disk_total_bytes{${l}} 0`,
      `vmove_move_disk_transfer_rate_bytes{${l}} 0`,
      `vmove_move_iteration{${l}} 1`,
      `vmove_move_memory_processed_bytes{${l}} ${512 * MiB}`,
      `vmove_move_memory_remaining_bytes{${l}} ${1536 * MiB}`,
      `vmove_move_memory_total_bytes{${l}} ${2 * GiB}`,
      `vmove_move_memory_transfer_rate_bytes{${l}} ${256 * MiB}`,
      `vmove_move_phase_start_time_seconds{${l},phase="Migrating"} ${entered}`,
      // completionTimeoutPerGiB 120 × 2 GiB to move
      `vmove_move_phase_timeout_seconds{${l},phase="Migrating"} 240`,
      `vmove_move_rung{${l}} 0`,
      `vmove_move_start_time_seconds{${l}} ${started}`,
    ]
      .map(sorted)
      .sort(),
  );
});

test('the phase start stays where the phase was entered when a note adds a history line within it, and phases without a limit have no timeout', () => {
  const f = new MoveRequestFixture('m1', { type: 'Live', variant: 'SharedStorage', vmRunning: true }).runTo('PreparingTarget');
  const entered = Date.parse(f.status!.history!.at(-1)!.startedAt) / 1000;
  const series = moveSeries(f.object);
  expect(series.find((s) => s.metric === 'vmove_move_phase_start_time_seconds')).toMatchObject({ labels: { phase: 'PreparingTarget' }, value: entered });
  expect(series.some((s) => s.metric === 'vmove_move_phase_timeout_seconds')).toBe(false);
  const history = [
    { phase: 'Scheduling' as const, attempt: 1, startedAt: 't0', endedAt: 't1' },
    { phase: 'Migrating' as const, attempt: 1, startedAt: 't1', endedAt: 't2' },
    { phase: 'Migrating' as const, attempt: 1, startedAt: 't2', message: 'climbed to rung 1' },
  ];
  expect(phaseEnteredAt(history, 'Migrating')).toBe('t1');
  expect(phaseEnteredAt(history, 'Verifying')).toBeUndefined();
});

test('a move has no per-move series before it leaves Pending and none once it ended', () => {
  const f = new MoveRequestFixture('m1', { type: 'Cold', variant: 'SharedStorage', vmRunning: true });
  expect(moveSeries(f.object)).toEqual([]);
  f.runToEnd();
  expect(f.status?.phase).toBe('Succeeded');
  expect(moveSeries(f.object)).toEqual([]);
});

test('moves by phase and type: one series per pair that exists, Pending ones with an empty type', () => {
  const a = new MoveRequestFixture('a', { type: 'Cold', variant: 'SharedStorage', vmRunning: true }).runToEnd();
  const b = new MoveRequestFixture('b', { type: 'Cold', variant: 'SharedStorage', vmRunning: true }).runToEnd();
  const c = new MoveRequestFixture('c', { type: 'Live', variant: 'SharedStorage', vmRunning: true }).runTo('Migrating');
  const waiting = { ...c.object, metadata: { ...c.object.metadata, name: 'd', uid: 'd' }, status: undefined };
  expect(text(movesByPhase([a.object, b.object, c.object, waiting]))).toEqual([
    'vmove_moves{phase="Migrating",move_type="Live"} 1',
    'vmove_moves{phase="Pending",move_type=""} 1',
    'vmove_moves{phase="Succeeded",move_type="Cold"} 2',
  ]);
});

const evacuation = (status: HostEvacuation['status']): HostEvacuation => ({
  apiVersion: 'vmove.dev/v1alpha1',
  kind: 'HostEvacuation',
  metadata: { name: 'drain-a', uid: 'e1' },
  spec: { nodeName: 'node-a' },
  status,
});

test("an evacuation: its VMs by state, its phase, and when a VM of it last finished for good (its start before any did)", () => {
  const ev = evacuation({ phase: 'Evacuating', total: 4, pending: 1, inProgress: 1, succeeded: 1, failed: 1, startTime: '2030-01-01T00:00:00Z', moves: [] });
  expect(text(evacuationSeries(ev, []))).toEqual([
    `vmove_evacuation_last_progress_time_seconds{hostevacuation="drain-a",node="node-a"} ${Date.parse('2030-01-01T00:00:00Z') / 1000}`,
    'vmove_evacuation_phase{hostevacuation="drain-a",node="node-a",phase="Evacuating"} 1',
    'vmove_evacuation_vms{hostevacuation="drain-a",node="node-a",state="failed"} 1',
    'vmove_evacuation_vms{hostevacuation="drain-a",node="node-a",state="in_progress"} 1',
    'vmove_evacuation_vms{hostevacuation="drain-a",node="node-a",state="pending"} 1',
    'vmove_evacuation_vms{hostevacuation="drain-a",node="node-a",state="succeeded"} 1',
  ]);
  const done = new MoveRequestFixture('drain-a-vm1-1', { type: 'Live', variant: 'SharedStorage', vmRunning: true }, 'ns', { 'vmove.dev/evacuation': 'drain-a' }).runToEnd();
  // A move the evacuation no longer lists as the VM's latest (it was retried) is not progress.
  const superseded = new MoveRequestFixture('drain-a-vm2-1', { type: 'Live', variant: 'SharedStorage', vmRunning: true }, 'ns', { 'vmove.dev/evacuation': 'drain-a' }).runToEnd();
  superseded.d.wait(60_000);
  const listed = { ...ev, status: { ...ev.status, moves: [{ namespace: 'ns', name: 'drain-a-vm1-1', vmName: 'vm-drain-a-vm1-1', phase: 'Succeeded' as const }] } };
  const series = evacuationSeries(listed, [done.object, { ...superseded.object, status: { ...superseded.status, completionTime: '2031-01-01T00:00:00Z' } }]);
  expect(series.find((s) => s.metric === 'vmove_evacuation_last_progress_time_seconds')?.value).toBe(Date.parse(done.status!.completionTime!) / 1000);
});

test('agents up or down, and VMs by node and phase', () => {
  const agent = (node: string, alive: boolean) => ({ node, alive, endpoint: 'http://x', capabilities: {} as never, expiredForSeconds: alive ? 0 : 30 });
  expect(text(agentSeries([agent('node-a', true), agent('node-b', false)]))).toEqual(['vmove_agent_up{node="node-a"} 1', 'vmove_agent_up{node="node-b"} 0']);
  const vm = (name: string, status: VirtualMachine['status']): VirtualMachine => ({ apiVersion: 'vmove.dev/v1alpha1', kind: 'VirtualMachine', metadata: { name, namespace: 'ns' }, spec: { image: 'i', cpu: 1, memory: '1Gi' }, ...(status ? { status } : {}) });
  expect(text(vmSeries([vm('a', { nodeName: 'node-a', phase: 'Running' }), vm('b', { nodeName: 'node-a', phase: 'Running' }), vm('c', { scheduledNode: 'node-b', phase: 'Pending' }), vm('d', undefined)]))).toEqual([
    'vmove_vms{node="",phase="Pending"} 1',
    'vmove_vms{node="node-a",phase="Running"} 2',
    'vmove_vms{node="node-b",phase="Pending"} 1',
  ]);
});

test('clusterSeries puts them together and finds the moves an evacuation owns by its label', () => {
  const owned = new MoveRequestFixture('drain-a-vm1-1', { type: 'Live', variant: 'SharedStorage', vmRunning: true }, 'ns', { 'vmove.dev/evacuation': 'drain-a' }).runToEnd();
  const ev = evacuation({ phase: 'Succeeded', moves: [{ namespace: 'ns', name: 'drain-a-vm1-1', vmName: 'x' }] });
  const all = clusterSeries({ moves: [owned.object], evacuations: [ev], vms: [], agents: [] });
  expect(all.find((s) => s.metric === 'vmove_evacuation_last_progress_time_seconds')?.value).toBe(Date.parse(owned.status!.completionTime!) / 1000);
  expect(all.filter((s) => s.metric === 'vmove_moves')).toHaveLength(1);
});
