// Reading a Prometheus histogram off /metrics text, and its quantiles between two scrapes, for
// benchmarks that report a component's own figures. Pure.

/** Cumulative bucket counts of one histogram by label value, from Prometheus text. Pure. */
export function histogramBuckets(text: string, metric: string, label: string): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  const re = new RegExp(`^${metric}_bucket\\{([^}]*)\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) {
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
    const key = labels[label] ?? '';
    if (!out.has(key)) out.set(key, new Map());
    out.get(key)!.set(le, Number(m[2]));
  }
  return out;
}

/**
 * The p-th percentile of what was observed between two scrapes of a histogram (cumulative
 * buckets), interpolated linearly inside its bucket as Prometheus' histogram_quantile does. Pure.
 */
export function quantileBetween(before: Map<number, number> | undefined, after: Map<number, number>, p: number): { value: number; count: number } {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((le) => after.get(le)! - (before?.get(le) ?? 0));
  const total = counts.at(-1) ?? 0;
  if (total === 0) return { value: NaN, count: 0 };
  const rank = (p / 100) * total;
  for (let i = 0; i < bounds.length; i++) {
    if (counts[i]! >= rank) {
      const lo = i === 0 ? 0 : bounds[i - 1]!;
      const hi = bounds[i]!;
      if (!Number.isFinite(hi)) return { value: lo, count: total };
      const below = i === 0 ? 0 : counts[i - 1]!;
      const inBucket = counts[i]! - below;
      return { value: lo + (hi - lo) * (inBucket > 0 ? (rank - below) / inBucket : 1), count: total };
    }
  }
  return { value: NaN, count: total };
}
