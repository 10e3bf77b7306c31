// What a user meets first: the CRDs install on a real API server, every manifest in examples/
// applies with the real kubectl, defaults are filled in, `kubectl explain` explains, and
// `kubectl get` shows the columns that matter.
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { PLURALS, type HostEvacuation, type MoveRequest, type VirtualMachine, type VmoveObject } from '../../src/api/types';
import { CLUSTER_START_TIMEOUT_MS, startTestCluster, type TestCluster } from '../support/testCluster';

const ROOT = resolve(__dirname, '..', '..');
const EXAMPLES = join(ROOT, 'examples');
const NS = 'examples';

const exampleFiles = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort();

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startTestCluster();
  await ok(['create', 'namespace', NS]);
}, CLUSTER_START_TIMEOUT_MS);

afterAll(async () => {
  await cluster?.stop();
});

/** Runs kubectl and fails the test with kubectl's own words when it fails. */
async function ok(args: string[], input?: string): Promise<string> {
  const r = await cluster.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
}

const resourceOf = (kind: keyof typeof PLURALS): string => `${PLURALS[kind]}.vmove.dev`;

async function getObject<T extends VmoveObject>(kind: T['kind'], name: string): Promise<T> {
  return JSON.parse(await ok(['get', resourceOf(kind), name, '-n', NS, '-o', 'json'])) as T;
}

/** `kubectl get` as a table: header names and the row of one object, split on runs of spaces. */
async function table(resource: string, name: string): Promise<{ header: string[]; row: Record<string, string> }> {
  const out = await ok(['get', resource, name, '-n', NS]);
  const [head, line] = out.trimEnd().split('\n');
  const header = head!.split(/\s{2,}/);
  const cells = line!.split(/\s{2,}/);
  return { header, row: Object.fromEntries(header.map((h, i) => [h, cells[i] ?? ''])) };
}

const squash = (s: string): string => s.replace(/\s+/g, ' ').trim();

test('all three CRDs are established (the CEL rules fit the API server\'s cost budget)', async () => {
  const out = await ok(['get', 'crd', '-o', 'json']);
  const crds = (JSON.parse(out) as { items: { metadata: { name: string }; status: { conditions: { type: string; status: string }[] } }[] }).items;
  const established = crds
    .filter((c) => c.status.conditions.some((x) => x.type === 'Established' && x.status === 'True'))
    .map((c) => c.metadata.name)
    .sort();
  expect(established).toEqual(expect.arrayContaining(Object.values(PLURALS).map((p) => `${p}.vmove.dev`)));
});

describe('examples/', () => {
  test('holds the manifests the docs promise', () => {
    expect(exampleFiles).toEqual(
      expect.arrayContaining([
        'vm-shared.yaml',
        'vm-local.yaml',
        'move-live.yaml',
        'move-cold.yaml',
        'move-resize.yaml',
        'resize-in-place.yaml',
        'rebuild.yaml',
        'evacuate-host.yaml',
        'evacuate-dry-run.yaml',
        'move-policy.yaml',
        'evacuation-strategies.yaml',
      ]),
    );
  });

  test.each(exampleFiles)('%s starts with a comment saying what it shows', (file) => {
    expect(readFileSync(join(EXAMPLES, file), 'utf8')).toMatch(/^# \S.{10,}\n/);
  });

  test.each(exampleFiles)('%s is accepted by kubectl apply and stored as written', async (file) => {
    const path = join(EXAMPLES, file);
    const out = await ok(['apply', '-n', NS, '-f', path]);
    const docs = parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS() as VmoveObject);
    for (const doc of docs) {
      expect(out).toContain(`${doc.metadata.name} created`);
      const stored = await getObject(doc.kind, doc.metadata.name!);
      expect(stored.spec).toMatchObject(doc.spec as object);
    }
  });

  test('the whole folder applies at once, as a user following the docs would do it', async () => {
    await ok(['create', 'namespace', 'all-examples']);
    await ok(['apply', '-n', 'all-examples', '-f', EXAMPLES]);
    const names = (await ok(['get', 'vmove', '-n', 'all-examples', '-o', 'name'])).trim().split('\n');
    const expected = exampleFiles.flatMap((f) =>
      parseAllDocuments(readFileSync(join(EXAMPLES, f), 'utf8')).map((d) => {
        const o = d.toJS() as VmoveObject;
        return `${o.kind.toLowerCase()}.vmove.dev/${o.metadata.name}`;
      }),
    );
    expect(names).toEqual(expect.arrayContaining(expected));
  });
});

describe('defaults', () => {
  test('a MoveRequest with only vmName gets priority User, storage Auto, cancel false, and no mode or policy (a MovePolicy or the controller fills those in)', async () => {
    await ok(['apply', '-n', NS, '-f', '-'], 'apiVersion: vmove.dev/v1alpha1\nkind: MoveRequest\nmetadata: {name: minimal-move}\nspec: {vmName: web}\n');
    const mr = await getObject<MoveRequest>('MoveRequest', 'minimal-move');
    expect(mr.spec).toEqual({ vmName: 'web', priority: 'User', storage: 'Auto', cancel: false });
  });

  test('a HostEvacuation with only nodeName cordons, moves two at a time and is no dry run', async () => {
    await ok(['apply', '-f', '-'], 'apiVersion: vmove.dev/v1alpha1\nkind: HostEvacuation\nmetadata: {name: minimal-evacuation}\nspec: {nodeName: node-c}\n');
    const he = JSON.parse(await ok(['get', resourceOf('HostEvacuation'), 'minimal-evacuation', '-o', 'json'])) as HostEvacuation;
    expect(he.spec).toEqual({ nodeName: 'node-c', mode: 'Auto', cordon: true, maxParallel: 2, dryRun: false, cancel: false });
  });

  test('a VirtualMachine is running unless it says otherwise, and memory may be plain bytes', async () => {
    await ok(['apply', '-n', NS, '-f', '-'], 'apiVersion: vmove.dev/v1alpha1\nkind: VirtualMachine\nmetadata: {name: minimal-vm}\nspec: {image: testguest, cpu: 1, memory: 268435456}\n');
    const vm = await getObject<VirtualMachine>('VirtualMachine', 'minimal-vm');
    expect(vm.spec).toEqual({ image: 'testguest', cpu: 1, memory: 268435456, running: true });
  });
});

describe('kubectl explain', () => {
  const crdSchema = (kind: keyof typeof PLURALS): Record<string, { description?: string; properties?: Record<string, { description?: string }> }> => {
    const crd = parse(readFileSync(join(ROOT, 'crds', `vmove.dev_${PLURALS[kind]}.yaml`), 'utf8')) as {
      spec: { versions: { schema: { openAPIV3Schema: { properties: Record<string, { properties: Record<string, { description?: string; properties?: Record<string, { description?: string }> }> }> } } }[] };
    };
    return crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec!.properties;
  };

  test.each([
    ['moverequest.spec', 'MoveRequest', undefined],
    ['moverequest.spec.policy', 'MoveRequest', 'policy'],
    ['moverequest.spec.target', 'MoveRequest', 'target'],
    ['virtualmachine.spec', 'VirtualMachine', undefined],
    ['hostevacuation.spec', 'HostEvacuation', undefined],
    ['movepolicy.spec', 'MovePolicy', undefined],
  ] as const)('%s describes every field in words', async (path, kind, nested) => {
    const out = squash(await ok(['explain', `${path}`, `--api-version=vmove.dev/v1alpha1`]));
    const fields = nested ? crdSchema(kind)[nested]!.properties! : crdSchema(kind);
    for (const [name, field] of Object.entries(fields)) {
      expect(out).toContain(name);
      expect(out).toContain(squash(field.description!));
    }
  });
});

describe('kubectl get', () => {
  const applyExample = (file: string): Promise<string> => ok(['apply', '-n', NS, '-f', join(EXAMPLES, file)]);

  test('MoveRequest columns show phase, VM, move type, nodes and progress', async () => {
    await applyExample('move-live.yaml');
    await ok(['patch', resourceOf('MoveRequest'), 'web-to-node-b', '-n', NS, '--subresource=status', '--type=merge', '-p',
      JSON.stringify({ status: { phase: 'Migrating', moveType: 'Live', sourceNode: 'node-a', targetNode: 'node-b', progress: { percent: 42 } } })]);
    const { header, row } = await table('mvr', 'web-to-node-b');
    expect(header).toEqual(['NAME', 'PHASE', 'VM', 'TYPE', 'SOURCE', 'TARGET', 'PRIORITY', 'PROGRESS', 'AGE']);
    expect(row).toMatchObject({ NAME: 'web-to-node-b', PHASE: 'Migrating', VM: 'web', TYPE: 'Live', SOURCE: 'node-a', TARGET: 'node-b', PRIORITY: 'User', PROGRESS: '42' });
  });

  test('VirtualMachine columns show phase, node, size as running and the move holding it', async () => {
    await applyExample('vm-shared.yaml');
    await ok(['patch', resourceOf('VirtualMachine'), 'web', '-n', NS, '--subresource=status', '--type=merge', '-p',
      JSON.stringify({ status: { phase: 'Moving', nodeName: 'node-a', cpu: 1, memory: '256Mi', moveRef: { name: 'web-to-node-b', uid: 'u-1' }, conditions: [{ type: 'GuestReady', status: 'True', reason: 'Heartbeat', message: 'the guest heartbeats', lastTransitionTime: '2030-01-01T00:00:00Z' }] } })]);
    const { header, row } = await table('vmv', 'web');
    expect(header).toEqual(['NAME', 'PHASE', 'NODE', 'GUEST', 'CPU', 'MEMORY', 'MOVE', 'AGE']);
    expect(row).toMatchObject({ NAME: 'web', PHASE: 'Moving', NODE: 'node-a', GUEST: 'True', CPU: '1', MEMORY: '256Mi', MOVE: 'web-to-node-b' });
  });

  test('HostEvacuation columns show node, mode, done of total and phase', async () => {
    await applyExample('evacuate-host.yaml');
    await ok(['patch', resourceOf('HostEvacuation'), 'drain-node-a', '--subresource=status', '--type=merge', '-p',
      JSON.stringify({ status: { phase: 'Evacuating', total: 5, succeeded: 3 } })]);
    const { header, row } = await table('hevac', 'drain-node-a');
    expect(header).toEqual(['NAME', 'NODE', 'MODE', 'DONE', 'TOTAL', 'PHASE', 'AGE']);
    expect(row).toMatchObject({ NAME: 'drain-node-a', NODE: 'node-a', MODE: 'Auto', DONE: '3', TOTAL: '5', PHASE: 'Evacuating' });
  });

  test('MovePolicy columns show mode, downtime and bandwidth (short name mvp)', async () => {
    await applyExample('move-policy.yaml');
    const { header, row } = await table('mvp', 'production-databases');
    expect(header).toEqual(['NAME', 'MODE', 'MAXDOWNTIMEMS', 'BANDWIDTH', 'AGE']);
    expect(row).toMatchObject({ NAME: 'production-databases', MODE: 'Live', MAXDOWNTIMEMS: '100' });
  });

  test('`kubectl get vmove` lists all three kinds', async () => {
    await Promise.all(['vm-shared.yaml', 'move-live.yaml', 'evacuate-host.yaml'].map(applyExample));
    const out = await ok(['get', 'vmove', '-n', NS, '-o', 'name']);
    expect(out).toContain('virtualmachine.vmove.dev/web');
    expect(out).toContain('moverequest.vmove.dev/web-to-node-b');
    expect(out).toContain('hostevacuation.vmove.dev/drain-node-a');
  });

  test('status is only written through the status subresource: re-applying the spec keeps it', async () => {
    await applyExample('move-live.yaml');
    await ok(['patch', resourceOf('MoveRequest'), 'web-to-node-b', '-n', NS, '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Migrating"}}']);
    await ok(['apply', '-n', NS, '-f', join(EXAMPLES, 'move-live.yaml')]);
    const mr = await getObject<MoveRequest>('MoveRequest', 'web-to-node-b');
    expect(mr.status?.phase).toBe('Migrating');
  });
});
