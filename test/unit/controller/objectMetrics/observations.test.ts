// What a MoveRequest's status shows happened, as observations (src/controller/objectMetrics/observations.ts),
// for moves the real machines drive to each end.
import { downtimeOf, observationsOf, type Observation } from '../../../../src/controller/objectMetrics/observations';
import { MoveRequestFixture } from './fixtures';

const kinds = <K extends Observation['kind']>(obs: Observation[], kind: K) => obs.filter((o): o is Extract<Observation, { kind: K }> => o.kind === kind);

test('a live move that succeeds: each phase entered once, from creation; the end with its duration; the hypervisor-reported downtime; the VM moved once', () => {
  const f = new MoveRequestFixture('m1', { type: 'Live', variant: 'SharedStorage', vmRunning: true }).runToEnd();
  const obs = observationsOf(f.object);
  const created = Date.parse(f.object.metadata.creationTimestamp!) / 1000;
  expect(kinds(obs, 'phaseEntered').map((o) => [o.labels.phase, o.seconds])).toEqual(
    f.status!.history!.map((h) => [h.phase, Date.parse(h.startedAt) / 1000 - created]),
  );
  expect(kinds(obs, 'phaseEntered').map((o) => o.labels.phase)).toEqual(['Pending', 'Scheduling', 'PreparingTarget', 'Migrating', 'SwitchingOver', 'Verifying', 'CleaningUp', 'Succeeded']);
  expect(kinds(obs, 'finished')).toEqual([
    { key: 'finished', kind: 'finished', labels: { move_type: 'Live', phase: 'Succeeded' }, seconds: (Date.parse(f.status!.completionTime!) - Date.parse(f.status!.startTime!)) / 1000 },
  ]);
  expect(kinds(obs, 'downtime')).toEqual([{ key: 'downtime', kind: 'downtime', labels: { move_type: 'Live' }, seconds: 0.035 }]);
  expect(kinds(obs, 'vmMoved')).toEqual([{ key: 'started', kind: 'vmMoved', labels: { namespace: 'ns', vm: 'vm-m1' } }]);
  expect(kinds(obs, 'rollback')).toEqual([]);
  expect(kinds(obs, 'retry')).toEqual([]);
  // The keys are the events: the same status gives the same keys, so applying once per key counts once.
  expect(new Set(obs.map((o) => o.key)).size).toBe(obs.length);
  expect(observationsOf(f.object).map((o) => o.key)).toEqual(obs.map((o) => o.key));
});

test("a cold move's downtime runs from the source's stop to the target's start", () => {
  const f = new MoveRequestFixture('m1', { type: 'Cold', variant: 'SharedStorage', vmRunning: true }).runToEnd();
  const h = f.status!.history!;
  const stopped = Date.parse(h.find((e) => e.phase === 'StoppingSource')!.endedAt!);
  const started = Date.parse(h.find((e) => e.phase === 'SwitchingOver')!.endedAt!);
  expect(downtimeOf(f.object)).toBe((started - stopped) / 1000);
  expect(downtimeOf(f.object)).toBeGreaterThan(0);
});

test('a hotplug resize has no downtime; a stopped VM has none to measure', () => {
  expect(downtimeOf(new MoveRequestFixture('a', { type: 'ResizeInPlace', variant: 'Hotplug', vmRunning: true }).runToEnd().object)).toBe(0);
  expect(downtimeOf(new MoveRequestFixture('b', { type: 'Cold', variant: 'SharedStorage', vmRunning: false }).runToEnd().object)).toBeUndefined();
});

test('a transient failure: a rollback caused by a failed step, then a retry (attempt 2) that succeeds', () => {
  const f = new MoveRequestFixture('m1', { type: 'Cold', variant: 'DiskCopy', vmRunning: true }).runTo('CopyingDisks').fail(true);
  expect(kinds(observationsOf(f.object), 'rollback')).toEqual([{ key: 'rollback/1', kind: 'rollback', labels: { move_type: 'Cold', reason: 'StepFailed' } }]);
  f.runToEnd();
  const obs = observationsOf(f.object);
  expect(f.status?.phase).toBe('Succeeded');
  expect(kinds(obs, 'retry')).toEqual([{ key: 'retry/2', kind: 'retry', labels: { move_type: 'Cold' } }]);
  expect(kinds(obs, 'rollback').map((o) => o.key)).toEqual(['rollback/1']);
  // Scheduling entered twice (once per attempt), each its own observation.
  expect(kinds(obs, 'phaseEntered').filter((o) => o.labels.phase === 'Scheduling')).toHaveLength(2);
});

test('rollback causes: cancel, completion timeout, progress timeout, lost host', () => {
  const cancelled = new MoveRequestFixture('c', { type: 'Live', variant: 'SharedStorage', vmRunning: true }).runTo('Migrating').cancel();
  expect(kinds(observationsOf(cancelled.object), 'rollback').map((o) => o.labels)).toEqual([{ move_type: 'Live', reason: 'Cancelled' }]);

  // completionTimeoutPerGiB 120 × 2 GiB: 240 s, with progress all along.
  const slow = new MoveRequestFixture('s', { type: 'Live', variant: 'SharedStorage', vmRunning: true }).runTo('Migrating');
  for (let i = 1; i <= 30; i++) slow.progress({ memoryProcessedBytes: i * 2 ** 20, memoryRemainingBytes: 2 ** 31, memoryTotalBytes: 2 ** 31, iteration: 1 }, 10_000);
  expect(slow.status?.phase).toBe('RollingBack');
  expect(kinds(observationsOf(slow.object), 'rollback').map((o) => o.labels.reason)).toEqual(['CompletionTimeout']);

  const quiet = new MoveRequestFixture('q', { type: 'Live', variant: 'SharedStorage', vmRunning: true }).runTo('Migrating').stallFor(61_000);
  expect(quiet.status?.phase).toBe('RollingBack');
  expect(kinds(observationsOf(quiet.object), 'rollback').map((o) => o.labels.reason)).toEqual(['ProgressTimeout']);

  const lost = new MoveRequestFixture('l', { type: 'Live', variant: 'SharedStorage', vmRunning: true }).runTo('Migrating').lose('target');
  expect(lost.status?.phase).toBe('RollingBack');
  expect(kinds(observationsOf(lost.object), 'rollback').map((o) => o.labels.reason)).toEqual(['HostLost']);
});

test('a MoveRequest an evacuation made again after a transient failure counts as an evacuation retry', () => {
  const first = new MoveRequestFixture('drain-a-vm1-1', { type: 'Live', variant: 'SharedStorage', vmRunning: true }, 'ns', { 'vmove.dev/evacuation-attempt': '1' });
  const second = new MoveRequestFixture('drain-a-vm1-2', { type: 'Live', variant: 'SharedStorage', vmRunning: true }, 'ns', { 'vmove.dev/evacuation-attempt': '2' });
  expect(kinds(observationsOf(first.object), 'evacuationRetry')).toEqual([]);
  expect(kinds(observationsOf(second.object), 'evacuationRetry')).toHaveLength(1);
});
