// The Grafana dashboard the chart ships (charts/vmove/files/dashboard.json): valid against
// Grafana's own schema (hack/grafana, from the grafana-foundation-sdk), laid out without overlaps,
// every query valid PromQL by Prometheus's parser (hack/promql) and reading only metrics that
// docs/metrics.md documents, every variable defined, and the panels issue 13 asks for there.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, TOOL_BUILD_TIMEOUT_MS, goToolPath, run } from '../support/hackTools';
import { documentedMetrics, metricOf, parsePromql } from '../support/metricsContract';

const FILE = join(REPO, 'charts', 'vmove', 'files', 'dashboard.json');

interface Target {
  refId: string;
  expr: string;
  datasource?: { uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string }[] };
}

const dashboard = JSON.parse(readFileSync(FILE, 'utf8')) as Dashboard;
const panels = dashboard.panels.filter((p) => p.type !== 'row');
const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** Grafana's own variables, which it fills in before Prometheus sees the query. */
const GRAFANA_INTERVALS = ['__rate_interval', '__interval', '__range'];
const variablesIn = (expr: string): string[] => [...expr.matchAll(/\$\{?(\w+)\}?/g)].map((m) => m[1]!);
/** The query as Prometheus receives it, Grafana's intervals filled in. */
const asSent = (expr: string): string => expr.replace(/\$\{?(__rate_interval|__interval|__range)\}?/g, '5m');

beforeAll(() => {
  goToolPath('grafana');
  goToolPath('promql');
}, TOOL_BUILD_TIMEOUT_MS);

test("Grafana's schema accepts the dashboard: no unknown fields, wrong types or missing options", () => {
  const r = run(goToolPath('grafana'), [FILE]);
  expect({ code: r.code, output: r.stdout.trim() + r.stderr }).toEqual({ code: 0, output: `${FILE}: ok` });
});

test('panels have unique ids and fit the 24-column grid without overlapping', () => {
  const ids = dashboard.panels.map((p) => p.id);
  expect(new Set(ids).size).toBe(ids.length);
  const overlaps: string[] = [];
  dashboard.panels.forEach((a, i) => {
    if (a.gridPos.x < 0 || a.gridPos.x + a.gridPos.w > 24) overlaps.push(`${a.title} leaves the grid`);
    for (const b of dashboard.panels.slice(i + 1)) {
      const apart = a.gridPos.x + a.gridPos.w <= b.gridPos.x || b.gridPos.x + b.gridPos.w <= a.gridPos.x || a.gridPos.y + a.gridPos.h <= b.gridPos.y || b.gridPos.y + b.gridPos.h <= a.gridPos.y;
      if (!apart) overlaps.push(`${a.title} overlaps ${b.title}`);
    }
  });
  expect(overlaps).toEqual([]);
});

test('every panel queries the chosen Prometheus data source', () => {
  const wrong = panels.flatMap((p) => {
    const problems = p.datasource?.uid === '${datasource}' ? [] : [`${p.title}: datasource ${JSON.stringify(p.datasource)}`];
    if (!p.targets?.length) problems.push(`${p.title}: no query`);
    const refs = (p.targets ?? []).map((t) => t.refId);
    if (new Set(refs).size !== refs.length) problems.push(`${p.title}: refIds repeat`);
    return problems;
  });
  expect(wrong).toEqual([]);
});

test('every variable a query uses is defined (or one of Grafana’s intervals)', () => {
  const defined = new Set([...dashboard.templating.list.map((v) => v.name), ...GRAFANA_INTERVALS]);
  const undefinedUses = queries.flatMap((q) => variablesIn(q.expr).filter((v) => !defined.has(v)).map((v) => `${q.panel}: $${v}`));
  expect(undefinedUses).toEqual([]);
});

test("every query parses with Prometheus's parser and reads only documented metrics", () => {
  const documented = documentedMetrics();
  const parsed = parsePromql(queries.map((q) => asSent(q.expr)));
  const problems = parsed.flatMap((p, i) => {
    const q = queries[i]!;
    if (p.error !== undefined) return [`${q.panel}: ${p.error} in ${q.expr}`];
    if (p.metrics.length === 0) return [`${q.panel}: reads no metric`];
    return p.metrics.filter((m) => !metricOf(m, documented)).map((m) => `${q.panel} reads ${m}, which docs/metrics.md does not document`);
  });
  expect(problems).toEqual([]);
});

test('it shows what issue 13 asks for: moves in flight, bytes/s, downtime distribution, failures, evacuation progress, queue depth', () => {
  const documented = documentedMetrics();
  const read = new Set(parsePromql(queries.map((q) => asSent(q.expr))).flatMap((p) => (p.metrics ?? []).map((m) => metricOf(m, documented))));
  for (const metric of [
    'vmove_move_start_time_seconds',
    'vmove_move_memory_transfer_rate_bytes',
    'vmove_move_disk_transfer_rate_bytes',
    'vmove_move_downtime_seconds',
    'vmove_moves_finished_total',
    'vmove_evacuation_vms',
    'vmove_workqueue_depth',
  ]) {
    expect({ metric, shown: read.has(metric) }).toEqual({ metric, shown: true });
  }
});
