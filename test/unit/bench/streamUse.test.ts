// The evacuation benchmark's account of its streams: what held one, and for how long.
import { streamUse } from '../../../src/bench/streamUse';
import type { HistoryEntry, MovePhase } from '../../../src/api/types';

const t = (s: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const history = (...steps: [MovePhase, number][]): HistoryEntry[] =>
  steps.map(([phase, at], i) => ({ phase, startedAt: t(at), ...(steps[i + 1] ? { endedAt: t(steps[i + 1]![1]) } : {}), attempt: 1 }));
const run = { start: Date.parse(t(0)), end: Date.parse(t(20)) };

test('a live move holds its stream from Scheduling until Verifying: fixed steps before, bytes on the wire', () => {
  const live = history(['Pending', 0], ['Scheduling', 2], ['PreparingTarget', 3], ['Migrating', 4], ['SwitchingOver', 9], ['Verifying', 10], ['CleaningUp', 12], ['Succeeded', 13]);
  expect(streamUse([live], 1, run)).toEqual({ capacitySeconds: 20, transferSeconds: 6, heldBeforeSeconds: 2, heldAfterSeconds: 0, unheldSeconds: 12 });
});

test('a rollback after the bytes keeps the stream; two streams double the capacity', () => {
  const rolled = history(['Scheduling', 0], ['PreparingTarget', 1], ['Migrating', 2], ['RollingBack', 6], ['Failed', 8]);
  const cold = history(['Scheduling', 0], ['StoppingSource', 1], ['PreparingTarget', 2], ['CopyingDisks', 3], ['SwitchingOver', 7], ['Verifying', 8], ['Succeeded', 9]);
  expect(streamUse([rolled, cold], 2, run)).toEqual({ capacitySeconds: 40, transferSeconds: 9, heldBeforeSeconds: 5, heldAfterSeconds: 2, unheldSeconds: 24 });
});
