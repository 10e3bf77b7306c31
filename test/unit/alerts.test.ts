// The alert rules the chart ships (charts/vmove/files/alerts.yaml), evaluated by Prometheus's own
// rule engine: `promtool test rules` feeds the series of test/unit/alerts/*.yaml in and checks
// which alerts fire, with which labels and annotations, at which times. Every alert has a case
// where it fires and one where it does not, and reads only metrics docs/metrics.md documents.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO, TOOL_BUILD_TIMEOUT_MS, promtoolPath, run } from '../support/hackTools';
import { documentedAlerts, documentedMetrics, metricOf, parsePromql } from '../support/metricsContract';

const RULES = join(REPO, 'charts', 'vmove', 'files', 'alerts.yaml');
const TESTS = join(REPO, 'test', 'unit', 'alerts');
const testFiles = readdirSync(TESTS).filter((f) => f.endsWith('.yaml')).sort().map((f) => join(TESTS, f));

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
}
const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const alertNames = rules.flatMap((r) => (r.alert ? [r.alert] : []));

let promtool: string;
beforeAll(() => {
  promtool = promtoolPath();
}, TOOL_BUILD_TIMEOUT_MS);

test('promtool accepts the rule file (syntax, templates, lint)', () => {
  const r = run(promtool, ['check', 'rules', '--lint-fatal', RULES]);
  expect({ code: r.code, output: r.stdout + r.stderr }).toMatchObject({ code: 0 });
});

test.each(testFiles.map((f) => [f.slice(TESTS.length + 1), f]))('promtool test rules %s: every case passes', (_name, file) => {
  const r = run(promtool, ['test', 'rules', file], { cwd: TESTS });
  // promtool prints which case failed, expected and got; show it all when it does.
  expect({ code: r.code, output: r.stdout + r.stderr }).toEqual({ code: 0, output: expect.stringContaining('SUCCESS') });
});

test('every alert has a case where it fires and one where it does not', () => {
  const fires = new Set<string>();
  const quiet = new Set<string>();
  for (const file of testFiles) {
    const doc = parse(readFileSync(file, 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[] };
    for (const t of doc.tests) for (const c of t.alert_rule_test ?? []) (c.exp_alerts?.length ? fires : quiet).add(c.alertname);
  }
  const missing = alertNames.flatMap((a) => [...(fires.has(a) ? [] : [`${a}: no firing case`]), ...(quiet.has(a) ? [] : [`${a}: no case where it stays quiet`])]);
  expect(missing).toEqual([]);
});

test('the rules read only metrics docs/metrics.md documents, and it lists every alert', () => {
  const documented = documentedMetrics();
  const parsed = parsePromql(rules.map((r) => r.expr));
  const problems = parsed.flatMap((p, i) => {
    const name = rules[i]!.alert ?? rules[i]!.record;
    if (p.error !== undefined) return [`${name}: ${p.error}`];
    if (p.metrics.length === 0) return [`${name}: reads no metric`];
    return p.metrics.filter((m) => !metricOf(m, documented)).map((m) => `${name} reads ${m}, which docs/metrics.md does not document`);
  });
  expect(problems).toEqual([]);
  expect(documentedAlerts().sort()).toEqual([...alertNames].sort());
});
