// The Argo CD health checks of config/argocd/vmove.dev/<Kind>/health.lua, run by real Lua
// interpreters the way Argo CD runs them (the object as the global `obj`) on every case of the
// Kind's health_test.yaml — Argo CD's own layout and format (resource_customizations/). lua5.1 is
// the dialect of gopher-lua, which Argo CD embeds; lua5.4 keeps the scripts off 5.1-only quirks.
// The objects in testdata/ are real ones, taken from moves and evacuations of the sim driver.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO, TOOL_BUILD_TIMEOUT_MS, luaPaths, run } from '../support/hackTools';

const ROOT = join(REPO, 'config', 'argocd', 'vmove.dev');
const HARNESS = join(REPO, 'test', 'support', 'argocdHealth.lua');

interface HealthCase {
  healthStatus: { status: string; message: string };
  inputPath: string;
}
const casesOf = (kind: string): HealthCase[] => (parse(readFileSync(join(ROOT, kind, 'health_test.yaml'), 'utf8')) as { tests: HealthCase[] }).tests;

const kinds = readdirSync(ROOT).sort();
/** What each check promises in its header: the statuses its cases must show. */
const STATUSES: Record<string, string[]> = {
  HostEvacuation: ['Degraded', 'Healthy', 'Progressing', 'Suspended'],
  MoveRequest: ['Degraded', 'Healthy', 'Progressing', 'Suspended'],
  VirtualMachine: ['Degraded', 'Healthy', 'Progressing'],
};

let luas: string[];
beforeAll(() => {
  luas = luaPaths();
}, TOOL_BUILD_TIMEOUT_MS);

function health(lua: string, kind: string, input: string): { status: string; message: string } {
  const object = parse(readFileSync(join(ROOT, kind, input), 'utf8')) as unknown;
  const r = run(lua, [HARNESS, join(ROOT, kind, 'health.lua')], { input: JSON.stringify(object) });
  if (r.code !== 0) throw new Error(`${lua} ${kind}/health.lua on ${input} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as { status: string; message: string };
}

test('there is a health check for each kind of vmove.dev', () => {
  expect(kinds).toEqual(Object.keys(STATUSES).sort());
});

describe.each(kinds)('%s', (kind) => {
  const cases = casesOf(kind);

  test.each(cases.map((c) => [c.inputPath, c]))('%s', (_name, c) => {
    for (const lua of luas) expect({ lua, ...health(lua, kind, c.inputPath) }).toEqual({ lua, ...c.healthStatus });
  });

  test('every object in testdata/ is a case, and the cases show every status the check gives', () => {
    const files = readdirSync(join(ROOT, kind, 'testdata')).map((f) => `testdata/${f}`).sort();
    expect(cases.map((c) => c.inputPath).sort()).toEqual(files);
    expect([...new Set(cases.map((c) => c.healthStatus.status))].sort()).toEqual(STATUSES[kind]);
  });
});

test('config/argocd/argocd-cm-patch.yaml carries the checks as they are (run `make argocd-cm`)', () => {
  const patch = parse(readFileSync(join(REPO, 'config', 'argocd', 'argocd-cm-patch.yaml'), 'utf8')) as { data: Record<string, string> };
  const want = Object.fromEntries(kinds.map((k) => [`resource.customizations.health.vmove.dev_${k}`, readFileSync(join(ROOT, k, 'health.lua'), 'utf8')]));
  expect(patch.data).toEqual(want);
});
