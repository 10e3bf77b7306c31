// Generated requests for the agent API fuzz test (fast-check): mutations of a valid request of
// every kind, random JSON, bytes that are not JSON, bad operation ids, path traversal in names,
// wrong methods, routes, content types, queries and tokens. Each case says what the agent must
// answer: `reject` with one of `statuses` (and, for a broken field, a problem naming it), or
// `any` answer below 500 when the mutation may have left the request valid.
// The expectations are written from the protocol's shapes (src/protocol), not from the
// validator, so the test does not grade the validator by itself.
import fc from 'fast-check';
import type { OperationKind } from '../../src/protocol/operations';
import { drained, type RawRequest } from './agentChannel';
import { sampleRequests, sampleVm } from './operationSamples';

export interface FuzzCase {
  category: string;
  request: RawRequest;
  /** The opId a PUT names (decoded): no record of it may exist unless the agent answered 200. */
  opId?: string;
  expect: { kind: 'reject'; statuses: number[]; field?: string } | { kind: 'any' };
  /** For failure messages. */
  note: string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = (string | number)[];

const KINDS = Object.keys(sampleRequests()) as OperationKind[];
/** Objects whose keys are data (annotations, exports, disk paths), not protocol fields. */
const MAPS = new Set(['vm.annotations', 'to.nbd.exports', 'to.libvirt.disks']);
/** Fields the protocol lets a sender leave out (src/protocol: the `?` fields). */
const OPTIONAL = new Set([
  'vm.kernelArgs', 'vm.annotations', 'vm.machine', 'deleteSharedDisks', 'heartbeatAbove',
  'tuning.multifdChannels', 'tuning.allowAutoConverge', 'tuning.allowPostCopy',
  'to.nbd', 'to.tls', 'to.postCopy', 'to.multifdChannels', 'to.libvirt', 'prepareIncoming:tuning',
]);
/** Strings that become path segments on the host. */
const NAME_FIELDS = /^(vm\.id|vm\.image|vm\.disks\[\d+\]\.name)$/;

/** How the validator names a field: `vm.disks[0].name`, `to.nbd.exports["data"]`, `body` for the whole. */
export function fieldOf(path: Path): string {
  let out = '';
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (MAPS.has(out)) out += `[${JSON.stringify(k)}]`;
    else out += out ? `.${k}` : k;
  }
  return out || 'body';
}

function pathsOf(v: Json, at: Path = []): { path: Path; value: Json }[] {
  const here = { path: at, value: v };
  if (Array.isArray(v)) return [here, ...v.flatMap((x, i) => pathsOf(x, [...at, i]))];
  if (v && typeof v === 'object') return [here, ...Object.entries(v).flatMap(([k, x]) => pathsOf(x, [...at, k]))];
  return [here];
}

function setAt(root: Json, path: Path, value: Json | undefined): Json {
  if (path.length === 0) return value ?? null;
  const copy = structuredClone(root) as Record<string | number, Json>;
  let at = copy;
  for (const k of path.slice(0, -1)) at = at[k] as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(at)) at.splice(last as number, 1);
    else delete at[last];
  } else at[last] = value;
  return copy;
}

const typeClass = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
const OTHER_TYPES: Json[] = [0, 7, 1.5, '', 'x', true, false, null, [], [1, 'a'], {}, { a: 1 }];

const TRAVERSAL = ['..', '../x', '../../etc/passwd', '/etc/passwd', 'a/b', 'a/../b', '.hidden', '.', 'x/..', '..\\..\\windows', 'a..b', '%2e%2e%2f', 'foo\u0000bar', 'disk name', '-', 'x'.repeat(254)];
const traversalName = fc.oneof(
  fc.constantFrom(...TRAVERSAL),
  fc.string({ maxLength: 20 }).map((s) => `../${s}`),
  fc.string({ maxLength: 20 }).map((s) => `${s}/../${s}`),
);

const BAD_OP_IDS = ['..', '../x', '../../state/operations/evil', '.hidden', 'a/b', 'a..b', ' ', 'op id', 'x'.repeat(254), 'é', '%2e%2e', 'op\u0000', '-lead', '_lead'];
const badOpId = fc.oneof(
  fc.constantFrom(...BAD_OP_IDS),
  fc.string({ maxLength: 30 }).map((s) => `../${s}`),
  fc.string({ minLength: 1, maxLength: 30 }).filter((s) => /[^A-Za-z0-9._-]/.test(s)),
);

const OPS = '/v1/operations/';
const json = { 'content-type': 'application/json' };
const put = (opId: string, body: string | Buffer, headers: Record<string, string> = json, query = ''): RawRequest => ({
  method: 'PUT',
  path: `${OPS}${encodeURIComponent(opId)}${query}`,
  headers,
  body,
});

type Mutation = 'wrongType' | 'remove' | 'extra' | 'negative' | 'traversal' | 'randomValue' | 'randomString';

function mutate(kind: OperationKind, path: Path, mutation: Mutation, pick: number, anyValue: Json, str: string, name: string): { body: Json; expect: FuzzCase['expect']; note: string } {
  const sample = sampleRequests(sampleVm('default_fz', 'fz-uid')) as unknown as Record<string, Json>;
  const base = sample[kind]!;
  const value = pathsOf(base).find((p) => fieldOf(p.path) === fieldOf(path))!.value;
  const field = fieldOf(path);
  const parent = fieldOf(path.slice(0, -1));
  const inMap = path.length > 0 && MAPS.has(parent) && typeof path[path.length - 1] === 'string';
  const inArray = typeof path[path.length - 1] === 'number';
  const reject = (f: string): FuzzCase['expect'] => ({ kind: 'reject', statuses: [400], field: f });
  const note = `${kind} ${mutation} at ${field}`;
  switch (mutation) {
    case 'wrongType': {
      const others = OTHER_TYPES.filter((o) => typeClass(o) !== typeClass(value));
      return { body: setAt(base, path, others[pick % others.length]!), expect: reject(field), note };
    }
    case 'remove': {
      if (path.length === 0) return { body: {}, expect: reject('kind'), note };
      const optional = OPTIONAL.has(field) || OPTIONAL.has(`${kind}:${field}`) || inMap || inArray;
      return { body: setAt(base, path, undefined), expect: optional ? { kind: 'any' } : reject(field), note };
    }
    case 'extra': {
      if (typeClass(value) !== 'object' || MAPS.has(field)) break;
      const key = `fuzz_${str.replace(/[^A-Za-z0-9]/g, '').slice(0, 8) || 'x'}`;
      return { body: setAt(base, [...path, key], anyValue), expect: reject(fieldOf([...path, key])), note: `${note}.${key}` };
    }
    case 'negative':
      if (typeof value !== 'number') break;
      return { body: setAt(base, path, -1 - pick), expect: reject(field), note };
    case 'traversal':
      if (!NAME_FIELDS.test(field)) break;
      return { body: setAt(base, path, name), expect: reject(field), note: `${note} = ${JSON.stringify(name)}` };
    case 'randomString':
      if (typeof value !== 'string') break;
      return { body: setAt(base, path, str), expect: { kind: 'any' }, note: `${note} = ${JSON.stringify(str)}` };
    case 'randomValue':
      return { body: setAt(base, path, anyValue), expect: { kind: 'any' }, note: `${note} = ${JSON.stringify(anyValue).slice(0, 80)}` };
  }
  // Not applicable to this field: a value of another type always breaks it.
  return mutate(kind, path, 'wrongType', pick, anyValue, str, name);
}

const kindAndPath = fc.constantFrom(...KINDS).chain((kind) => {
  const paths = pathsOf(sampleRequests(sampleVm('default_fz', 'fz-uid'))[kind] as unknown as Json).map((p) => p.path);
  return fc.tuple(fc.constant(kind), fc.constantFrom(...paths));
});

const mutationCase = (opId: string): fc.Arbitrary<FuzzCase> =>
  fc
    .tuple(
      kindAndPath,
      fc.constantFrom<Mutation>('wrongType', 'wrongType', 'remove', 'remove', 'extra', 'negative', 'traversal', 'traversal', 'randomValue', 'randomString'),
      fc.nat(),
      fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>,
      fc.string({ maxLength: 24 }),
      traversalName,
    )
    .map(([[kind, path], m, pick, anyValue, str, name]) => {
      const { body, expect, note } = mutate(kind, path, m, pick, anyValue, str, name);
      return { category: `mutation:${m}`, request: put(opId, JSON.stringify(body)), opId, expect, note };
    });

const randomJsonCase = (opId: string): fc.Arbitrary<FuzzCase> =>
  fc.oneof(
    fc.jsonValue({ maxDepth: 4 }),
    // Shaped like a request: a real kind, random everything else.
    fc.record({ kind: fc.constantFrom(...KINDS), vm: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: ['kind'] }).chain((r) => fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }).map((extra) => ({ ...extra, ...r }))),
  ).map((body) => ({ category: 'random-json', request: put(opId, JSON.stringify(body)), opId, expect: { kind: 'any' as const }, note: JSON.stringify(body).slice(0, 120) }));

const notJsonCase = (opId: string): fc.Arbitrary<FuzzCase> =>
  fc
    .oneof(
      fc.string({ maxLength: 200, unit: 'binary' }),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc.constantFrom('', ' ', '{', '{"kind":', '[1,2', 'null garbage', '\u0000', '{"kind":"startVm"}}', '\ufeff{}'),
    )
    .map((body) => {
      let valid = true;
      try {
        JSON.parse(body.toString());
      } catch {
        valid = false;
      }
      return {
        category: 'not-json',
        request: put(opId, body),
        opId,
        expect: valid ? { kind: 'any' as const } : { kind: 'reject' as const, statuses: [400] },
        note: JSON.stringify(body.toString()).slice(0, 120),
      };
    });

const badOpIdCase: fc.Arbitrary<FuzzCase> = fc.tuple(badOpId, fc.constantFrom(...KINDS), fc.boolean()).map(([opId, kind, raw]) => {
  const body = JSON.stringify(sampleRequests(sampleVm('default_fz', 'fz-uid'))[kind]);
  // Encoded (the name arrives whole) or, when it is plain ASCII, as written (a path the URL parser would rewrite is refused).
  const asWritten = raw && /^[\x21-\x7e]*$/.test(opId) && !opId.includes('?') && !opId.includes('#');
  const request: RawRequest = asWritten ? { method: 'PUT', path: `${OPS}${opId}`, headers: json, body } : put(opId, body);
  return { category: 'bad-op-id', request, opId, expect: { kind: 'reject', statuses: [400, 404, 405] }, note: `opId ${JSON.stringify(opId)} ${asWritten ? 'as written' : 'encoded'}` };
});

const routeCase = (opId: string): fc.Arbitrary<FuzzCase> => {
  const body = JSON.stringify(sampleRequests(sampleVm('default_fz', 'fz-uid')).startVm);
  return fc.oneof(
    // A method the route does not take.
    fc.tuple(fc.constantFrom('POST', 'DELETE', 'PATCH', 'OPTIONS'), fc.constantFrom(`${OPS}${opId}`, '/v1/vms', '/v1/disks/default_fz/root', '/healthz')).map(([method, path]) => ({
      category: 'method', request: { method, path, headers: json, body }, opId, expect: { kind: 'reject' as const, statuses: [405] }, note: `${method} ${path}`,
    })),
    // Somewhere no route is (a "." or ".." segment, which encodeURIComponent leaves as it is, is refused as not canonical).
    fc.string({ maxLength: 30 }).map((s) => `/v1/${encodeURIComponent(s)}/x/y`).map((path) => ({
      category: 'route', request: { method: 'GET', path }, expect: { kind: 'reject' as const, statuses: /^\/v1\/\.{1,2}\//.test(path) ? [400] : [404] }, note: path,
    })),
    // Disk reads with names that leave the VM's folder.
    fc.tuple(traversalName, fc.boolean()).map(([name, vmSide]) => {
      const path = vmSide ? `/v1/disks/${encodeURIComponent(name)}/root` : `/v1/disks/default_fz/${encodeURIComponent(name)}`;
      return { category: 'disk-traversal', request: { method: 'GET', path }, expect: { kind: 'reject' as const, statuses: [400, 404] }, note: path };
    }),
    // A body that is not JSON by its content type.
    fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', 'application/jsonp', '').map((ct) => ({
      category: 'content-type', request: put(opId, body, ct ? { 'content-type': ct } : {}), opId, expect: { kind: 'reject' as const, statuses: [415] }, note: `content-type ${JSON.stringify(ct)}`,
    })),
    // Queries the route does not read, or a wait that is no number.
    fc.constantFrom('?waitMs=abc', '?waitMs=-1', '?waitMs=', '?waitMs=1&waitMs=2', '?force=true', '?waitMs=NaN', '?%zz=1').map((q) => ({
      category: 'query', request: put(opId, body, json, q), opId, expect: { kind: 'reject' as const, statuses: [400] }, note: q,
    })),
    // No token, a made-up one, a malformed header.
    fc.constantFrom<[string | null, Record<string, string>]>([null, {}], ['not-a-token-anyone-issued', {}], [null, { authorization: 'Basic YWRtaW46YWRtaW4=' }], [null, { authorization: 'Bearer' }]).map(([token, headers]) => ({
      category: 'auth', request: { ...put(opId, body, { ...json, ...headers }), token }, opId, expect: { kind: 'reject' as const, statuses: [401] }, note: `token ${token} ${JSON.stringify(headers)}`,
    })),
  );
};

/** `count` cases, deterministic for `seed`; opIds `fz-<i>` where the case does not choose its own. */
export function fuzzCases(count: number, seed: number): FuzzCase[] {
  const one = (i: number): fc.Arbitrary<FuzzCase> => {
    const opId = `fz-${i}`;
    return fc.oneof(
      { weight: 55, arbitrary: mutationCase(opId) },
      { weight: 12, arbitrary: randomJsonCase(opId) },
      { weight: 6, arbitrary: notJsonCase(opId) },
      { weight: 10, arbitrary: badOpIdCase },
      { weight: 17, arbitrary: routeCase(opId) },
    );
  };
  const rng = fc.sample(fc.integer(), { numRuns: count, seed });
  return rng.map((s, i) => fc.sample(one(i), { numRuns: 1, seed: s })[0]!);
}

const MiB = 2 ** 20;

/** Bodies over the limit: declared, or streamed without a length; and bodies that never finish. */
export function oversizedAndSlowCases(): FuzzCase[] {
  const big = (i: number, declared: boolean, sendBytes: number): FuzzCase => {
    const opId = `fz-huge-${i}`;
    const chunk = Buffer.alloc(64 * 1024, '{'.charCodeAt(0));
    return {
      category: declared ? 'huge-declared' : 'huge-streamed',
      opId,
      note: `${declared ? 'Content-Length' : 'chunked'} body, ${sendBytes} bytes written at most`,
      expect: { kind: 'reject', statuses: [413] },
      request: {
        method: 'PUT',
        path: `${OPS}${opId}`,
        headers: declared ? { ...json, 'content-length': String(8 * MiB) } : { ...json, 'transfer-encoding': 'chunked' },
        write: async (req, answered) => {
          for (let sent = 0; sent < sendBytes && !answered() && !req.destroyed; sent += chunk.length) {
            if (!req.write(chunk)) await drained(req);
          }
          // Never finish a declared body: the agent must answer without waiting for the rest.
          if (declared) await new Promise<void>((r) => (answered() ? r() : req.once('response', () => r()).once('close', () => r())));
        },
      },
    };
  };
  const slow = (i: number): FuzzCase => {
    const opId = `fz-slow-${i}`;
    const body = Buffer.from(JSON.stringify(sampleRequests(sampleVm('default_fz', 'fz-uid')).startVm));
    return {
      category: 'slow',
      opId,
      note: 'a valid body, one byte a second',
      expect: { kind: 'reject', statuses: [408] },
      request: {
        method: 'PUT',
        path: `${OPS}${opId}`,
        headers: { ...json, 'content-length': String(body.length) },
        write: async (req, answered) => {
          for (let sent = 0; sent < body.length - 1 && !answered() && !req.destroyed; sent += 1) {
            req.write(body.subarray(sent, sent + 1));
            await new Promise((r) => setTimeout(r, 1_000));
          }
        },
      },
    };
  };
  return [
    ...[0, 1, 2, 3].map((i) => big(i, true, 64 * 1024)),
    ...[4, 5, 6, 7].map((i) => big(i, false, 3 * MiB)),
    ...[0, 1, 2].map(slow),
  ];
}
