// Keeps src/api/types.ts and the CRD schemas in crds/ in step: the same fields, the same
// optionality, the same primitive and enum types, on both sides. The CRDs are the source of
// truth; a field added to one side only fails here with a list of every mismatch.
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ts from 'typescript';
import { parse } from 'yaml';
import { GROUP, PLURALS, VERSION } from '../../src/api/types';

const ROOT = resolve(__dirname, '..', '..');
const TYPES_FILE = join(ROOT, 'src', 'api', 'types.ts');
const CRD_DIR = join(ROOT, 'crds');

// ---------------------------------------------------------------- a common shape for both sides

type Shape =
  | { kind: 'string' }
  | { kind: 'number' }
  | { kind: 'boolean' }
  /** Kubernetes quantity: `Quantity` in TypeScript, x-kubernetes-int-or-string in the CRD. */
  | { kind: 'quantity' }
  | { kind: 'enum'; values: string[] }
  /** Free-form object: Record<string, unknown> / x-kubernetes-preserve-unknown-fields. */
  | { kind: 'opaque' }
  | { kind: 'map'; value: Shape }
  | { kind: 'array'; items: Shape }
  | { kind: 'object'; props: Map<string, { shape: Shape; optional: boolean }> };

const shapeName = (s: Shape): string =>
  s.kind === 'enum' ? `enum(${s.values.join('|')})` : s.kind === 'map' ? `map<${shapeName(s.value)}>` : s.kind === 'array' ? `${shapeName(s.items)}[]` : s.kind;

// ---------------------------------------------------------------- TypeScript side

class TypeShapes {
  private readonly decls = new Map<string, ts.InterfaceDeclaration | ts.TypeAliasDeclaration>();

  constructor(source: string) {
    const file = ts.createSourceFile('types.ts', source, ts.ScriptTarget.ES2023, true);
    for (const st of file.statements) {
      if (ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st)) this.decls.set(st.name.text, st);
    }
  }

  named(name: string): Shape {
    // Quantity is a union (string | number) that the CRD spells x-kubernetes-int-or-string.
    if (name === 'Quantity') return { kind: 'quantity' };
    const decl = this.decls.get(name);
    if (!decl) throw new Error(`types.ts has no interface or type named ${name}`);
    if (ts.isTypeAliasDeclaration(decl)) return this.node(decl.type, name);
    const props = new Map<string, { shape: Shape; optional: boolean }>();
    for (const base of decl.heritageClauses?.flatMap((h) => h.types) ?? []) {
      const inherited = this.named(base.expression.getText());
      if (inherited.kind === 'object') inherited.props.forEach((v, k) => props.set(k, v));
    }
    this.members(decl.members, name).forEach((v, k) => props.set(k, v));
    return { kind: 'object', props };
  }

  private members(members: ts.NodeArray<ts.TypeElement>, where: string): Map<string, { shape: Shape; optional: boolean }> {
    const props = new Map<string, { shape: Shape; optional: boolean }>();
    for (const m of members) {
      if (!ts.isPropertySignature(m) || !m.type) throw new Error(`${where}: unsupported member ${m.getText()}`);
      const name = m.name.getText();
      props.set(name, { shape: this.node(m.type, `${where}.${name}`), optional: m.questionToken !== undefined });
    }
    return props;
  }

  private node(n: ts.TypeNode, where: string): Shape {
    switch (n.kind) {
      case ts.SyntaxKind.StringKeyword:
      case ts.SyntaxKind.TypeQuery: // `typeof API_VERSION`
        return { kind: 'string' };
      case ts.SyntaxKind.NumberKeyword:
        return { kind: 'number' };
      case ts.SyntaxKind.BooleanKeyword:
        return { kind: 'boolean' };
    }
    if (ts.isParenthesizedTypeNode(n)) return this.node(n.type, where);
    if (ts.isArrayTypeNode(n)) return { kind: 'array', items: this.node(n.elementType, where) };
    if (ts.isTypeLiteralNode(n)) return { kind: 'object', props: this.members(n.members, where) };
    if (ts.isLiteralTypeNode(n) && ts.isStringLiteral(n.literal)) return { kind: 'enum', values: [n.literal.text] };
    if (ts.isUnionTypeNode(n)) {
      const values = n.types.map((t) => (ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal) ? t.literal.text : undefined));
      if (values.every((v): v is string => v !== undefined)) return { kind: 'enum', values };
    }
    if (ts.isTypeReferenceNode(n)) {
      const name = n.typeName.getText();
      if (name === 'Record' && n.typeArguments?.length === 2) {
        const value = n.typeArguments[1]!;
        return value.kind === ts.SyntaxKind.UnknownKeyword ? { kind: 'opaque' } : { kind: 'map', value: this.node(value, where) };
      }
      if (!n.typeArguments) return this.named(name);
    }
    throw new Error(`${where}: no CRD equivalent known for the type ${n.getText()}`);
  }
}

// ---------------------------------------------------------------- CRD side

interface JsonSchema {
  type?: string;
  description?: string;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

function schemaShape(s: JsonSchema, where: string): Shape {
  if (s['x-kubernetes-int-or-string']) return { kind: 'quantity' };
  switch (s.type) {
    case 'string':
      return s.enum ? { kind: 'enum', values: s.enum.map(String) } : { kind: 'string' };
    case 'integer':
    case 'number':
      return { kind: 'number' };
    case 'boolean':
      return { kind: 'boolean' };
    case 'array':
      if (!s.items) throw new Error(`${where}: array without items`);
      return { kind: 'array', items: schemaShape(s.items, `${where}[]`) };
    case 'object': {
      if (s.properties) {
        const required = new Set(s.required ?? []);
        const props = new Map<string, { shape: Shape; optional: boolean }>();
        for (const [k, v] of Object.entries(s.properties)) props.set(k, { shape: schemaShape(v, `${where}.${k}`), optional: !required.has(k) });
        return { kind: 'object', props };
      }
      if (typeof s.additionalProperties === 'object') return { kind: 'map', value: schemaShape(s.additionalProperties, `${where}.*`) };
      if (s['x-kubernetes-preserve-unknown-fields']) return { kind: 'opaque' };
      return { kind: 'object', props: new Map() };
    }
  }
  throw new Error(`${where}: schema without a type`);
}

// ---------------------------------------------------------------- comparison

/** Every difference between the two shapes, one line each, named by field path. */
function compareShapes(path: string, t: Shape, c: Shape, out: string[]): void {
  if (t.kind !== c.kind) {
    out.push(`${path}: types.ts says ${shapeName(t)}, the CRD says ${shapeName(c)}`);
    return;
  }
  if (t.kind === 'enum' && c.kind === 'enum') {
    const tv = [...t.values].sort().join('|');
    const cv = [...c.values].sort().join('|');
    if (tv !== cv) out.push(`${path}: enum values differ: types.ts ${tv}, CRD ${cv}`);
  } else if (t.kind === 'map' && c.kind === 'map') {
    compareShapes(`${path}.*`, t.value, c.value, out);
  } else if (t.kind === 'array' && c.kind === 'array') {
    compareShapes(`${path}[]`, t.items, c.items, out);
  } else if (t.kind === 'object' && c.kind === 'object') {
    for (const [name, tp] of t.props) {
      const cp = c.props.get(name);
      if (!cp) {
        out.push(`${path}.${name}: in types.ts but not in the CRD`);
        continue;
      }
      if (tp.optional !== cp.optional) {
        out.push(`${path}.${name}: ${tp.optional ? 'optional' : 'required'} in types.ts but ${cp.optional ? 'optional' : 'required'} in the CRD`);
      }
      compareShapes(`${path}.${name}`, tp.shape, cp.shape, out);
    }
    for (const name of c.props.keys()) if (!t.props.has(name)) out.push(`${path}.${name}: in the CRD but not in types.ts`);
  }
}

// ---------------------------------------------------------------- the CRDs

interface Crd {
  file: string;
  doc: {
    spec: {
      group: string;
      scope: string;
      names: { kind: string; plural: string; shortNames?: string[]; categories?: string[] };
      versions: {
        name: string;
        served: boolean;
        storage: boolean;
        subresources?: { status?: object };
        additionalPrinterColumns?: { name: string; type: string; jsonPath: string }[];
        schema: { openAPIV3Schema: JsonSchema & { properties: Record<string, JsonSchema> } };
      }[];
    };
  };
}

const KINDS = ['VirtualMachine', 'MoveRequest', 'HostEvacuation', 'MovePolicy'] as const;
const SCOPES: Record<(typeof KINDS)[number], string> = { VirtualMachine: 'Namespaced', MoveRequest: 'Namespaced', HostEvacuation: 'Cluster', MovePolicy: 'Cluster' };
/** MovePolicy is configuration: nobody writes a status for it. */
const HAS_STATUS: Record<(typeof KINDS)[number], boolean> = { VirtualMachine: true, MoveRequest: true, HostEvacuation: true, MovePolicy: false };

function loadCrds(): Map<string, Crd> {
  const crds = new Map<string, Crd>();
  for (const file of readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml'))) {
    const doc = parse(readFileSync(join(CRD_DIR, file), 'utf8')) as Crd['doc'];
    crds.set(doc.spec.names.kind, { file, doc });
  }
  return crds;
}

function rootSchema(crd: Crd): JsonSchema & { properties: Record<string, JsonSchema> } {
  return crd.doc.spec.versions.find((v) => v.name === VERSION)!.schema.openAPIV3Schema;
}

/** The mismatches between one kind's interface in `typesSource` and its CRD schema. */
function kindMismatches(typesSource: string, kind: string, schema: JsonSchema): string[] {
  const shapes = new TypeShapes(typesSource);
  const t = shapes.named(kind);
  const c = schemaShape(schema, kind);
  // apiVersion, kind and metadata are Kubernetes' envelope, which the API server fills and
  // checks itself; spec and status are the API.
  for (const envelope of ['apiVersion', 'kind', 'metadata']) {
    if (t.kind === 'object') t.props.delete(envelope);
    if (c.kind === 'object') c.props.delete(envelope);
  }
  const out: string[] = [];
  compareShapes(kind, t, c, out);
  return out;
}

/** Paths of properties in the schema that carry no description. */
function undescribed(s: JsonSchema, path: string, out: string[]): string[] {
  for (const [k, v] of Object.entries(s.properties ?? {})) {
    if (k === 'metadata' && path === '') continue;
    const p = path ? `${path}.${k}` : k;
    if (!v.description?.trim()) out.push(p);
    undescribed(v, p, out);
    if (v.items) undescribed(v.items, `${p}[]`, out);
  }
  return out;
}

function schemaAt(root: JsonSchema, jsonPath: string): JsonSchema | undefined {
  let s: JsonSchema | undefined = root;
  // A filter (`conditions[?(@.type=="GuestReady")]`) picks an item of the list.
  for (const part of jsonPath.replace(/^\./, '').replace(/\[\?\([^)]*\)\]/g, '[]').split('.')) {
    s = part.endsWith('[]') ? s?.properties?.[part.slice(0, -2)]?.items : s?.properties?.[part];
  }
  return s;
}

const typesSource = readFileSync(TYPES_FILE, 'utf8');
const crds = loadCrds();

describe('CRDs in crds/', () => {
  test('there is exactly one CRD per kind', () => {
    expect([...crds.keys()].sort()).toEqual([...KINDS].sort());
  });

  test.each(KINDS)('%s: group, plural, scope, version, status subresource and category', (kind) => {
    const crd = crds.get(kind)!;
    expect(crd.file).toBe(`${GROUP}_${PLURALS[kind]}.yaml`);
    expect(crd.doc.spec.group).toBe(GROUP);
    expect(crd.doc.spec.names.plural).toBe(PLURALS[kind]);
    expect(crd.doc.spec.scope).toBe(SCOPES[kind]);
    expect(crd.doc.spec.names.categories).toContain('vmove');
    expect(crd.doc.spec.versions.map((v) => [v.name, v.served, v.storage, v.subresources?.status !== undefined])).toEqual([[VERSION, true, true, HAS_STATUS[kind]]]);
  });

  test('short names are unique and do not take KubeVirt\'s (vm, vmi, vmim, …)', () => {
    const kubevirt = ['vm', 'vms', 'vmi', 'vmis', 'vmim', 'vmims', 'vmirs', 'vmpool'];
    const all = [...crds.values()].flatMap((c) => c.doc.spec.names.shortNames ?? []);
    expect(new Set(all).size).toBe(all.length);
    expect(all.filter((n) => kubevirt.includes(n))).toEqual([]);
  });

  test.each(KINDS)('%s: every field has a description for kubectl explain', (kind) => {
    expect(undescribed(rootSchema(crds.get(kind)!), '', [])).toEqual([]);
  });

  test.each(KINDS)('%s: printer columns point at fields of the matching type', (kind) => {
    const crd = crds.get(kind)!;
    const root = rootSchema(crd);
    const columns = crd.doc.spec.versions[0]!.additionalPrinterColumns ?? [];
    const wrong = columns
      .filter((col) => col.jsonPath !== '.metadata.creationTimestamp')
      .flatMap((col) => {
        const s = schemaAt(root, col.jsonPath);
        if (!s) return [`${col.name}: ${col.jsonPath} is not in the schema`];
        const type = s['x-kubernetes-int-or-string'] ? 'string' : s.type;
        return type === col.type ? [] : [`${col.name}: column is ${col.type}, ${col.jsonPath} is ${type}`];
      });
    expect(wrong).toEqual([]);
    expect(columns.at(-1)).toMatchObject({ name: 'Age', type: 'date' });
  });
});

describe('src/api/types.ts agrees with the CRD schemas', () => {
  test.each(KINDS)('%s: same fields, optionality and types', (kind) => {
    const mismatches = kindMismatches(typesSource, kind, rootSchema(crds.get(kind)!));
    // One message listing every mismatch, so a drift is fixed in one go.
    expect(mismatches.join('\n')).toBe('');
  });

  // The comparison itself must see drift; otherwise the test above proves nothing.
  test('a field added to types.ts only is reported', () => {
    const drifted = typesSource.replace('export interface MoveRequestSpec {', 'export interface MoveRequestSpec {\n  urgency?: number;');
    expect(drifted).not.toBe(typesSource);
    expect(kindMismatches(drifted, 'MoveRequest', rootSchema(crds.get('MoveRequest')!))).toEqual([
      'MoveRequest.spec.urgency: in types.ts but not in the CRD',
    ]);
  });

  test('a field added to the CRD only, a changed enum and a changed optionality are reported', () => {
    const schema = structuredClone(rootSchema(crds.get('HostEvacuation')!));
    const spec = schema.properties.spec!;
    spec.properties!.priority = { type: 'integer', description: 'x' };
    spec.properties!.mode!.enum = ['Auto', 'Live'];
    spec.required = ['nodeName', 'cordon'];
    expect(kindMismatches(typesSource, 'HostEvacuation', schema).sort()).toEqual([
      'HostEvacuation.spec.cordon: optional in types.ts but required in the CRD',
      'HostEvacuation.spec.mode: enum values differ: types.ts Auto|Cold|Live|Rebuild, CRD Auto|Live',
      'HostEvacuation.spec.priority: in the CRD but not in types.ts',
    ]);
  });

  test('a changed primitive type deep in status is reported', () => {
    const drifted = typesSource.replace('  dirtyRateBytesPerSecond?: number;', '  dirtyRateBytesPerSecond?: string;');
    expect(drifted).not.toBe(typesSource);
    expect(kindMismatches(drifted, 'MoveRequest', rootSchema(crds.get('MoveRequest')!))).toEqual([
      'MoveRequest.status.progress.dirtyRateBytesPerSecond: types.ts says string, the CRD says number',
    ]);
  });
});
