// Checks of what arrives over the wire: operation ids and OperationRequest bodies, against the
// protocol (src/protocol). Pure. The protocol is closed: a field it does not name is refused, so
// a typo or a smuggled value never reaches a driver. Names that become path segments (VM ids,
// disks, images) and addresses a driver hands to QEMU or libvirt (migration URIs, NBD, libvirt
// paths) are checked here, at the edge, so drivers get only well-formed input.
import { STORAGE_KINDS } from '../api/types';
import { canonicalJson } from '../json';
import type { OperationKind, OperationRequest } from '../protocol/operations';

/** Operation ids name files: letters, digits, dot, dash, underscore. */
const OP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
/** VM ids, disk and image names become path segments too. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

export const OPERATION_KINDS: readonly OperationKind[] = [
  'ensureVm',
  'startVm',
  'stopVm',
  'deleteVm',
  'prepareIncoming',
  'migrate',
  'abortMigration',
  'completeIncoming',
  'resumeSource',
  'copyDisks',
  'hotplug',
  'verify',
];

export const isValidOpId = (opId: string): boolean => OP_ID.test(opId) && !opId.includes('..');
export const isSafeName = (name: string): boolean => SAFE_NAME.test(name) && !name.includes('..');

/** One thing wrong with a request: the field (`vm.disks[0].name`) and what it must be. */
export interface Problem {
  field: string;
  message: string;
}

export const describeProblem = (p: Problem): string => `${p.field}: ${p.message}`;

const NAME_RULE = 'letters, digits, ".", "-", "_" (1–253, no "..")';

/** What is wrong with a name taken from a URL path (`opId`, `vmId`, `disk`), if anything. */
export function pathNameProblem(field: string, value: string, ok: (s: string) => boolean = isSafeName): Problem | undefined {
  if (ok(value)) return undefined;
  const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  return { field, message: `must be ${NAME_RULE} (got ${JSON.stringify(shown)})` };
}

export const opIdProblem = (opId: string): Problem | undefined => pathNameProblem('opId', opId, isValidOpId);

// --- checks: each adds what is wrong with the value at `at` -------------------------------

type Check = (v: unknown, at: string, out: Problem[]) => void;
type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const typeName = (v: unknown): string => (v === null ? 'null' : v === undefined ? 'nothing' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`);
const got = (v: unknown): string => {
  if (typeof v === 'string') return ` (got "${v.length > 40 ? `${v.slice(0, 40)}…` : v}")`;
  if (typeof v === 'number' || typeof v === 'boolean') return ` (got ${String(v)})`;
  return ` (got ${typeName(v)})`;
};
const must = (out: Problem[], field: string, what: string, v: unknown): void => {
  out.push({ field, message: `must be ${what}${got(v)}` });
};

const bool: Check = (v, at, out) => {
  if (typeof v !== 'boolean') must(out, at, 'true or false', v);
};

const int = (min: number, max = Number.MAX_SAFE_INTEGER): Check => (v, at, out) => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    must(out, at, max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer ${min}–${max}`, v);
  }
};

const num = (min: number): Check => (v, at, out) => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > Number.MAX_SAFE_INTEGER) must(out, at, `a number ≥ ${min}`, v);
};

const oneOf = (...values: readonly string[]): Check => (v, at, out) => {
  if (typeof v !== 'string' || !values.includes(v)) must(out, at, `one of ${values.map((x) => `"${x}"`).join(', ')}`, v);
};

const str = (what: string, ok: (s: string) => boolean, maxLength: number): Check => (v, at, out) => {
  if (typeof v !== 'string' || v.length > maxLength || !ok(v)) must(out, at, what, v);
};

/** No control characters: these strings end up in command lines, logs and file contents. */
const printable = (s: string): boolean => !/[\u0000-\u001f\u007f]/.test(s);
const safeName = str(NAME_RULE, isSafeName, 253);

/** Host names and IP literals (IPv6 in brackets inside URIs). */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])$/;
const hostOk = (h: string): boolean => HOST.test(h) || HOST.test(`[${h}]`);
const portOk = (p: string | undefined): boolean => p === undefined || (/^\d{1,5}$/.test(p) && Number(p) >= 1 && Number(p) <= 65_535);

/** QEMU and the sim: `tcp:HOST:PORT`; libvirt: `tcp://HOST[:PORT]`. Never `exec:` or `unix:`. */
function migrationUriOk(uri: string): boolean {
  const m = /^tcp:(?:\/\/)?(\[[^\]]*\]|[^:/[\]]+)(?::(\d+))?$/.exec(uri);
  if (!m) return false;
  const libvirtForm = uri.startsWith('tcp://');
  return HOST.test(m[1]!) && portOk(m[2]) && (libvirtForm || m[2] !== undefined);
}

/** `qemu+tcp://host/system` and the like: a libvirt connection URI of another host. */
function libvirtUriOk(uri: string): boolean {
  const m = /^(qemu|test)(\+(tcp|tls|ssh|unix))?:\/\/(\[[^\]]*\]|[^:/[\]]*)(?::(\d+))?(\/[A-Za-z0-9._/-]*)?(\?[A-Za-z0-9._=&/%-]*)?$/.exec(uri);
  return !!m && (m[4] === '' || HOST.test(m[4]!)) && portOk(m[5]);
}

/** An absolute path with no `.`/`..` segments. */
const absolutePathOk = (p: string): boolean => p.startsWith('/') && printable(p) && p.split('/').every((s) => s !== '.' && s !== '..');

function httpUrlOk(s: string): boolean {
  // A base URL only: the client appends /v1/disks/… itself.
  if (!/^https?:\/\/[^/?#@\\]+\/?$/.test(s) || !printable(s)) return false;
  try {
    const u = new URL(s);
    return u.username === '' && u.password === '' && (u.pathname === '/' || u.pathname === '') && u.search === '' && u.hash === '';
  } catch {
    return false;
  }
}

interface Field {
  check: Check;
  optional?: boolean;
}
const req = (check: Check): Field => ({ check });
const opt = (check: Check): Field => ({ check, optional: true });

/** A closed object: every field named, no other. An optional field may be absent (or undefined). */
const obj = (fields: Record<string, Field>): Check => (v, at, out) => {
  if (!isObj(v)) return must(out, at, 'an object', v);
  const path = (k: string) => (at ? `${at}.${k}` : k);
  for (const [k, f] of Object.entries(fields)) {
    if (v[k] === undefined) {
      if (!f.optional) out.push({ field: path(k), message: 'required' });
    } else f.check(v[k], path(k), out);
  }
  for (const k of Object.keys(v)) {
    if (!Object.hasOwn(fields, k) && v[k] !== undefined) out.push({ field: path(k), message: 'unknown field' });
  }
};

const arr = (item: Check, maxItems: number): Check => (v, at, out) => {
  if (!Array.isArray(v)) return must(out, at, 'an array', v);
  if (v.length > maxItems) return must(out, at, `at most ${maxItems} items`, `${v.length} items`);
  v.forEach((x, i) => item(x, `${at}[${i}]`, out));
};

const map = (key: (k: string) => boolean, keyWhat: string, value: Check, maxKeys: number): Check => (v, at, out) => {
  if (!isObj(v)) return must(out, at, 'an object', v);
  const keys = Object.keys(v);
  if (keys.length > maxKeys) return must(out, at, `at most ${maxKeys} entries`, `${keys.length} entries`);
  for (const k of keys) {
    const field = `${at}[${JSON.stringify(k)}]`;
    if (!key(k)) out.push({ field, message: `key must be ${keyWhat}` });
    else value(v[k], field, out);
  }
};

const and = (...checks: Check[]): Check => (v, at, out) => {
  const before = out.length;
  for (const c of checks) {
    c(v, at, out);
    if (out.length > before) return;
  }
};

// --- the protocol's shapes ----------------------------------------------------------------

const MAX_DISKS = 64;
const MAX_CPU = 1024;

const diskSpec = obj({
  name: req(safeName),
  sizeBytes: req(int(0)),
  storage: req(oneOf(...STORAGE_KINDS)),
});

const uniqueDiskNames: Check = (v, at, out) => {
  const seen = new Set<string>();
  (v as { name: string }[]).forEach((d, i) => {
    if (seen.has(d.name)) out.push({ field: `${at}[${i}].name`, message: `must be unique (another disk is named "${d.name}")` });
    seen.add(d.name);
  });
};

/** Kubernetes annotation keys: optional DNS prefix and a name. */
const annotationKeyOk = (k: string): boolean => k.length <= 317 && /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(k);

const vmSpec = obj({
  id: req(safeName),
  uid: req(str('letters, digits, ".", "-", "_" (1–128)', (s) => /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(s), 128)),
  image: req(str('an image name: letters, digits, ".", "-", "_", ":", "+" (1–253, no "..")', (s) => /^[A-Za-z0-9][A-Za-z0-9._:+-]{0,252}$/.test(s) && !s.includes('..'), 253)),
  cpu: req(int(1, MAX_CPU)),
  memoryBytes: req(int(1)),
  disks: req(and(arr(diskSpec, MAX_DISKS), uniqueDiskNames)),
  kernelArgs: opt(str('a kernel command line without control characters (≤ 4096)', printable, 4096)),
  annotations: opt(map(annotationKeyOk, 'an annotation key', str('a string (≤ 65536)', () => true, 65_536), 256)),
  machine: opt(str('the source\'s runtime layout string (≤ 65536)', printable, 65_536)),
});

const tuning = obj({
  bandwidthMiBps: req(num(0)),
  maxDowntimeMs: req(num(0)),
  autoConverge: req(bool),
  postCopy: req(bool),
  multifdChannels: opt(int(1, 64)),
  autoConvergeStepPercent: opt(int(1, 99)),
  allowAutoConverge: opt(bool),
  allowPostCopy: opt(bool),
});

const hostName = str('a host name or IP address', hostOk, 255);
const port = int(1, 65_535);

const incomingEndpoint = obj({
  migrationUri: req(str('tcp:HOST:PORT or tcp://HOST[:PORT]', migrationUriOk, 300)),
  nbd: opt(
    obj({
      host: req(hostName),
      port: req(port),
      exports: req(map(isSafeName, 'a disk name', str('an NBD export name (letters, digits, "._-/")', (s) => /^[A-Za-z0-9][A-Za-z0-9._/-]{0,511}$/.test(s) && !s.includes('..'), 512), MAX_DISKS)),
    }),
  ),
  tls: opt(bool),
  tlsName: opt(str('a node name (DNS-1123 subdomain)', (s) => /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(s), 253)),
  postCopy: opt(bool),
  multifdChannels: opt(int(0, 64)),
  libvirt: opt(
    obj({
      peerUri: req(str('a libvirt URI such as qemu+tcp://HOST/system', libvirtUriOk, 512)),
      listenAddress: req(hostName),
      disks: req(map(isSafeName, 'a disk name', str('an absolute path without "." or ".." segments', absolutePathOk, 4096), MAX_DISKS)),
      serialLog: req(str('an absolute path without "." or ".." segments', absolutePathOk, 4096)),
    }),
  ),
});

/** Each kind's fields besides `kind` and `vm`. */
const KIND_FIELDS: Record<OperationKind, Record<string, Field>> = {
  ensureVm: { disks: req(oneOf('keep', 'fresh')), start: req(bool) },
  startVm: {},
  stopVm: {},
  deleteVm: { deleteLocalDisks: req(bool), deleteSharedDisks: opt(bool), discard: opt(bool) },
  prepareIncoming: { blockMigration: req(bool), tuning: opt(tuning), insecureMigration: opt(bool) },
  migrate: { to: req(incomingEndpoint), tuning: req(tuning), blockMigration: req(bool) },
  abortMigration: {},
  completeIncoming: {},
  resumeSource: {},
  copyDisks: { from: req(obj({ endpoint: req(str('the http(s) base URL of the source agent', httpUrlOk, 2048)) })) },
  hotplug: { cpu: req(int(1, MAX_CPU)), memoryBytes: req(int(1)) },
  verify: { windowMs: req(int(1, 600_000)), expectRunning: req(bool), heartbeatAbove: opt(int(0)), acceptConsole: opt(bool) },
};

const KIND_CHECKS = Object.fromEntries(
  OPERATION_KINDS.map((k) => [k, obj({ kind: req(() => undefined), vm: req(vmSpec), ...KIND_FIELDS[k] })]),
) as Record<OperationKind, Check>;

/** What a body says it is, for messages: `migrate request`, or `operation request` when it names no known kind. */
export function requestName(body: unknown): string {
  const kind = isObj(body) ? body.kind : undefined;
  return `${OPERATION_KINDS.includes(kind as OperationKind) ? String(kind) : 'operation'} request`;
}

/** The request, or the list of what is wrong with it (each naming its field). */
export function validateOperationRequest(body: unknown): { request: OperationRequest } | { problems: Problem[] } {
  const problems: Problem[] = [];
  if (!isObj(body)) must(problems, 'body', 'a JSON object', body);
  else if (body.kind === undefined) problems.push({ field: 'kind', message: `required: one of ${OPERATION_KINDS.map((k) => `"${k}"`).join(', ')}` });
  else if (!OPERATION_KINDS.includes(body.kind as OperationKind)) oneOf(...OPERATION_KINDS)(body.kind, 'kind', problems);
  else KIND_CHECKS[body.kind as OperationKind](body, '', problems);
  return problems.length ? { problems } : { request: body as unknown as OperationRequest };
}

/** Whether `next` may be sent again for the operation `prev` names: the same, or (migrate) only tuning changed. */
export function compareResubmission(prev: OperationRequest, next: OperationRequest): 'same' | 'tuning' | 'conflict' {
  if (canonicalJson(prev) === canonicalJson(next)) return 'same';
  if (prev.kind === 'migrate' && next.kind === 'migrate') {
    const strip = (r: OperationRequest) => canonicalJson({ ...r, tuning: undefined });
    if (strip(prev) === strip(next)) return 'tuning';
  }
  return 'conflict';
}
