// docs/metrics.md as data: the metrics it documents (first column of its tables) with their
// type, and the alerts its table of alerts names. Queries in alert rules and dashboards may
// read only what is documented there.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, goToolPath, run } from './hackTools';

export type MetricType = 'counter' | 'gauge' | 'histogram';

const DOC = join(REPO, 'docs', 'metrics.md');

/** name → type, from rows like "| `vmove_moves` | gauge | …". */
export function documentedMetrics(): Map<string, MetricType> {
  const out = new Map<string, MetricType>();
  for (const m of readFileSync(DOC, 'utf8').matchAll(/^\| `(vmove_[a-z0-9_]+)` \| (counter|gauge|histogram) \|/gm)) out.set(m[1]!, m[2] as MetricType);
  return out;
}

/** Alert names of the "Alerts" table (rows like "| `VMoveNoLeader` | …"). */
export function documentedAlerts(): string[] {
  const section = readFileSync(DOC, 'utf8').split(/^## Alerts$/m)[1] ?? '';
  return [...section.matchAll(/^\| `([A-Z][A-Za-z]+)` \|/gm)].map((m) => m[1]!);
}

/** The documented metric a series name belongs to: a histogram's _bucket, _sum and _count are its own. */
export function metricOf(series: string, documented: Map<string, MetricType>): string | undefined {
  if (documented.has(series)) return series;
  const base = series.replace(/_(bucket|sum|count)$/, '');
  return documented.get(base) === 'histogram' ? base : undefined;
}

export type Parsed = { metrics: string[]; error?: undefined } | { error: string; metrics?: undefined };

/** Each expression parsed by Prometheus's own parser (hack/promql): the metrics it reads, or the parse error. */
export function parsePromql(exprs: string[]): Parsed[] {
  const r = run(goToolPath('promql'), [], { input: JSON.stringify(exprs) });
  if (r.code !== 0) throw new Error(`hack/promql failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { metrics?: string[]; error?: string }[]).map((p) => (p.error ? { error: p.error } : { metrics: p.metrics ?? [] }));
}
