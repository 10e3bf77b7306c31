// Figures as the watch prints them, and the transfer rate it measures between status updates.
import type { MoveRequest } from '../../../src/api/types';
import { bar, bytes, duration, fit, rate, span } from '../../../src/plugin/format';
import { nextRateSample } from '../../../src/plugin/transferRate';

test('bytes, rates, durations, bars', () => {
  expect([bytes(0), bytes(1023), bytes(1536), bytes(256 * 2 ** 20), bytes(1.25 * 2 ** 30), bytes(4 * 2 ** 40)]).toEqual(['0 B', '1023 B', '1.5 KiB', '256 MiB', '1.3 GiB', '4.0 TiB']);
  expect(rate(64 * 2 ** 20)).toBe('64.0 MiB/s');
  expect([duration(0), duration(45.4), duration(185), duration(7260)]).toEqual(['0s', '45s', '3m05s', '2h01m']);
  expect(span('2030-01-01T00:00:00.000Z', Date.parse('2030-01-01T00:00:01.250Z'))).toBe('1.3s');
  expect(span('2030-01-01T00:00:00.000Z', Date.parse('2030-01-01T00:00:00.014Z'))).toBe('14ms');
  expect(span('2030-01-01T00:00:00.000Z', Date.parse('2030-01-01T00:02:10Z'))).toBe('2m10s');
  expect([bar(0, 10), bar(50, 10), bar(100, 10), bar(undefined, 4)]).toEqual(['[..........]', '[#####.....]', '[##########]', '[....]']);
  expect(fit('abcdef', 4)).toBe('abc…');
  expect(fit('abc', 4)).toBe('abc');
});

const mr = (phase: string, processed: number, attempt = 1): MoveRequest =>
  ({ apiVersion: 'vmove.dev/v1alpha1', kind: 'MoveRequest', metadata: { name: 'm', namespace: 'default' }, spec: { vmName: 'web' }, status: { phase, attempt, progress: { memoryProcessedBytes: processed } } }) as MoveRequest;

test('the transfer rate: bytes between two updates over the time between them, smoothed; a new step starts over', () => {
  const MiB = 2 ** 20;
  let s = nextRateSample(undefined, mr('Migrating', 0), 0);
  expect(s.bytesPerSecond).toBeUndefined();
  s = nextRateSample(s, mr('Migrating', 200 * MiB), 2_000);
  expect(s.bytesPerSecond).toBe(100 * MiB);
  s = nextRateSample(s, mr('Migrating', 300 * MiB), 4_000);
  // 50 MiB/s now, weighted 0.6 against 100 before.
  expect(s.bytesPerSecond).toBe(70 * MiB);
  // The same bytes again soon after: the figure stays; long after: the link is idle.
  expect(nextRateSample(s, mr('Migrating', 300 * MiB), 5_000).bytesPerSecond).toBe(70 * MiB);
  expect(nextRateSample(s, mr('Migrating', 300 * MiB), 12_000).bytesPerSecond).toBe(0);
  // Another phase or attempt counts from zero.
  expect(nextRateSample(s, mr('CopyingDisks', 10 * MiB), 6_000).bytesPerSecond).toBeUndefined();
  expect(nextRateSample(s, mr('Migrating', 400 * MiB, 2), 6_000).bytesPerSecond).toBeUndefined();
});
