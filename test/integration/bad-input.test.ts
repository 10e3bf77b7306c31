// Every manifest in test/bad-input/ is refused by a real API server through the real kubectl,
// with an error that names the problem, and leaves nothing behind. See test/bad-input/README.md
// for the file conventions (header `# expect:`, two documents for an update).
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { CLUSTER_START_TIMEOUT_MS, startTestCluster, type TestCluster } from '../support/testCluster';

const CORPUS = resolve(__dirname, '..', 'bad-input');
const NS = 'bad-input';

interface BadInput {
  file: string;
  expect: string;
  /** Applied first and must succeed (update cases only). */
  create?: string;
  /** The manifest that must be refused. */
  bad: string;
  kind: string;
  name: string;
}

function loadCase(file: string): BadInput {
  const text = readFileSync(join(CORPUS, file), 'utf8');
  const expectText = /^# expect: (.+)$/m.exec(text)?.[1]?.trim();
  if (!expectText) throw new Error(`${file}: no "# expect: <error text>" header`);
  const docs = text.split(/^---$/m);
  if (docs.length > 2) throw new Error(`${file}: at most two documents (create, then the refused update)`);
  const bad = docs.at(-1)!;
  const meta = parse(bad) as { kind?: string; metadata?: { name?: string } };
  if (!meta.kind || !meta.metadata?.name) throw new Error(`${file}: the manifest needs a kind and metadata.name`);
  return { file, expect: expectText, ...(docs.length === 2 ? { create: docs[0]! } : {}), bad, kind: meta.kind, name: meta.metadata.name };
}

const cases = readdirSync(CORPUS)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map(loadCase);

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startTestCluster();
  const r = await cluster.kubectl(['create', 'namespace', NS]);
  if (r.code !== 0) throw new Error(r.stderr);
}, CLUSTER_START_TIMEOUT_MS);

afterAll(async () => {
  await cluster?.stop();
});

const apply = (manifest: string) => cluster.kubectl(['apply', '-n', NS, '-f', '-'], { input: manifest });

/** Names of every vmove object, namespaced or not (the `vmove` category spans all three kinds). */
async function storedNames(): Promise<string[]> {
  const r = await cluster.kubectl(['get', 'vmove', '-A', '-o', 'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}']);
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

async function resourceVersion(c: BadInput): Promise<string> {
  const r = await cluster.kubectl(['get', `${c.kind.toLowerCase()}.vmove.dev`, c.name, '-n', NS, '-o', 'jsonpath={.metadata.resourceVersion}']);
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout;
}

test('the corpus is large enough to mean something, creates and updates both', () => {
  expect(cases.length).toBeGreaterThanOrEqual(25);
  expect(cases.filter((c) => c.create).length).toBeGreaterThanOrEqual(10);
});

// Guards the "nothing was stored" checks below: the listing must see an object that was stored.
test('a valid object shows up in the listing the checks use', async () => {
  const r = await apply('apiVersion: vmove.dev/v1alpha1\nkind: HostEvacuation\nmetadata: {name: control-evacuation}\nspec: {nodeName: node-a}\n');
  expect(r.code).toBe(0);
  expect(await storedNames()).toContain('control-evacuation');
});

test.each(cases.map((c) => [c.file, c] as const))('%s is rejected', async (_file, c) => {
  if (c.create !== undefined) {
    const created = await apply(c.create);
    // The valid first document must go in; kubectl's words are in the failure message if not.
    expect({ step: 'create', code: created.code, stderr: created.stderr }).toMatchObject({ step: 'create', code: 0 });
    const before = await resourceVersion(c);

    const r = await apply(c.bad);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(c.expect);
    // The refused update changed nothing.
    expect(await resourceVersion(c)).toBe(before);
  } else {
    const r = await apply(c.bad);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(c.expect);
    expect(await storedNames()).not.toContain(c.name);
  }
}, 30_000);
