// The scale benchmark reads the controller's reconcile histogram from /metrics and reports the
// p99 of what happened between two scrapes: the reading must match histogram_quantile's.
import { histogramBuckets, quantileBetween } from '../../../src/bench/histogram';

const scrape = (counts: Record<string, number[]>): string =>
  Object.entries(counts)
    .flatMap(([kind, c]) => ['0.005', '0.01', '0.025', '0.05', '+Inf'].map((le, i) => `vmove_reconcile_duration_seconds_bucket{kind="${kind}",le="${le}"} ${c[i]}`))
    .join('\n');

test('buckets are read per kind, cumulative as Prometheus writes them', () => {
  const b = histogramBuckets(`# HELP x\n${scrape({ MoveRequest: [1, 2, 3, 4, 5], VirtualMachine: [0, 0, 0, 0, 7] })}\nvmove_reconcile_duration_seconds_sum{kind="MoveRequest"} 1`, 'vmove_reconcile_duration_seconds', 'kind');
  expect([...b.keys()].sort()).toEqual(['MoveRequest', 'VirtualMachine']);
  expect(b.get('MoveRequest')!.get(0.01)).toBe(2);
  expect(b.get('VirtualMachine')!.get(Infinity)).toBe(7);
});

test('the percentile counts only what was observed between the two scrapes, interpolated in its bucket', () => {
  const before = histogramBuckets(scrape({ k: [100, 100, 100, 100, 100] }), 'vmove_reconcile_duration_seconds', 'kind').get('k');
  // Then 100 more: 50 under 5 ms, 40 in 5–10 ms, 10 in 25–50 ms.
  const after = histogramBuckets(scrape({ k: [150, 190, 190, 200, 200] }), 'vmove_reconcile_duration_seconds', 'kind').get('k')!;
  expect(quantileBetween(before, after, 50)).toEqual({ value: 0.005, count: 100 });
  const p99 = quantileBetween(before, after, 99);
  expect(p99.count).toBe(100);
  expect(p99.value).toBeCloseTo(0.025 + 0.025 * 0.9, 6);
  // Nothing observed: no figure rather than a made-up zero.
  expect(quantileBetween(after, after, 99).count).toBe(0);
  // Beyond the last finite bound the answer is that bound, as histogram_quantile says.
  const slow = histogramBuckets(scrape({ k: [0, 0, 0, 0, 10] }), 'vmove_reconcile_duration_seconds', 'kind').get('k')!;
  expect(quantileBetween(undefined, slow, 99).value).toBe(0.05);
});
