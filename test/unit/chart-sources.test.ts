// The Helm chart carries copies of the API and the permissions (Helm reads only files inside
// the chart): charts/vmove/crds/ of crds/, charts/vmove/files/rbac/ of config/rbac/, from which
// its templates take their RBAC rules. crds/ and config/rbac/ are the source of truth; a change
// on one side only fails here, saying what to run. The chart's values also name the drivers and
// storage kinds the code knows.
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { STORAGE_KINDS } from '../../src/api/types';
import { DRIVER_KINDS } from '../../src/drivers/registry';

const ROOT = resolve(__dirname, '..', '..');
const CHART = join(ROOT, 'charts', 'vmove');
const SYNC = 'run `make chart-sync`';

const yamlFiles = (dir: string): string[] => readdirSync(dir).filter((n) => /\.ya?ml$/.test(n)).sort();

/** Every way `copy` differs from `source`, one line each. */
function copyDrift(source: string, copy: string): string[] {
  const rel = (dir: string, f: string) => join(dir, f).slice(ROOT.length + 1);
  const wanted = yamlFiles(source);
  const have = new Set(yamlFiles(copy));
  const problems: string[] = [];
  for (const f of wanted) {
    if (!have.has(f)) problems.push(`${rel(copy, f)} is missing: ${SYNC} (copies ${rel(source, '')} into the chart)`);
    else if (!readFileSync(join(source, f)).equals(readFileSync(join(copy, f)))) {
      problems.push(`${rel(copy, f)} differs from ${rel(source, f)}: edit ${rel(source, f)} (never the copy), then ${SYNC}`);
    }
  }
  for (const f of have) if (!wanted.includes(f)) problems.push(`${rel(copy, f)} is a copy of nothing (no ${rel(source, f)}): ${SYNC} (removes stale copies)`);
  return problems;
}

interface Manifest {
  kind: string;
  metadata: { name: string; namespace?: string };
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

const manifests = (file: string): Manifest[] =>
  parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);

describe('the chart carries the API and permissions of the repository', () => {
  test('charts/vmove/crds/ is a byte-identical copy of crds/', () => {
    expect(copyDrift(join(ROOT, 'crds'), join(CHART, 'crds'))).toEqual([]);
  });

  test('charts/vmove/files/rbac/ is a byte-identical copy of config/rbac/', () => {
    expect(copyDrift(join(ROOT, 'config', 'rbac'), join(CHART, 'files', 'rbac'))).toEqual([]);
  });

  // The templates render, per component, one ServiceAccount bound to one ClusterRole and one
  // Role, taking the roles' rules from the copy; anything else config/rbac/ grew would be lost.
  test.each(['controller', 'agent'])('config/rbac/%s.yaml has the shape the chart\'s RBAC templates render', (component) => {
    const file = join(ROOT, 'config', 'rbac', `${component}.yaml`);
    const objects = manifests(file);
    const name = `vmove-${component}`;
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    const expected = ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ServiceAccount'].map((k) => `${k}/${name}`);
    expect(kinds).toEqual(expected);
    for (const binding of objects.filter((o) => o.kind.endsWith('Binding'))) {
      const role = binding.kind === 'RoleBinding' ? 'Role' : 'ClusterRole';
      expect({ binding: binding.metadata.name, roleRef: binding.roleRef, subjects: binding.subjects }).toEqual({
        binding: name,
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: role, name },
        subjects: [{ kind: 'ServiceAccount', name, namespace: 'vmove-system' }],
      });
    }
  });
});

describe('the chart names what the code knows', () => {
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as {
    properties: { agent: { properties: { driver: { enum: string[] }; storage: { items: { enum: string[] } } } } };
  };

  test('agent.driver offers exactly the drivers of src/drivers/registry.ts', () => {
    expect([...schema.properties.agent.properties.driver.enum].sort()).toEqual([...DRIVER_KINDS].sort());
  });

  test('agent.storage offers exactly the storage kinds of the API', () => {
    expect([...schema.properties.agent.properties.storage.items.enum].sort()).toEqual([...STORAGE_KINDS].sort());
  });

  test("the chart's appVersion (its default image tag) is package.json's version", () => {
    const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { appVersion: string };
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(chart.appVersion).toBe(pkg.version);
  });
});
