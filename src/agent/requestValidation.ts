// Checks of what arrives over the wire: operation ids and OperationRequest bodies. Pure.
import { STORAGE_KINDS } from '../api/types';
import { canonicalJson } from '../json';
import type { OperationKind, OperationRequest } from '../protocol/operations';

/** Operation ids name files: letters, digits, dot, dash, underscore. */
const OP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
/** VM ids and disk names become path segments too. */
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

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown, min: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min;
const isNum = (v: unknown, min: number): boolean => typeof v === 'number' && Number.isFinite(v) && v >= min;

function vmProblems(vm: unknown): string[] {
  if (!isObj(vm)) return ['vm: required object'];
  const p: string[] = [];
  if (typeof vm.id !== 'string' || !isSafeName(vm.id)) p.push('vm.id: letters, digits, ".", "-", "_"');
  if (typeof vm.uid !== 'string' || vm.uid === '') p.push('vm.uid: required');
  if (typeof vm.image !== 'string' || vm.image === '') p.push('vm.image: required');
  if (!isInt(vm.cpu, 1)) p.push('vm.cpu: integer ≥ 1');
  if (!isInt(vm.memoryBytes, 1)) p.push('vm.memoryBytes: integer ≥ 1');
  if (!Array.isArray(vm.disks)) p.push('vm.disks: required array');
  else {
    const names = new Set<string>();
    vm.disks.forEach((d: unknown, i) => {
      if (!isObj(d)) return p.push(`vm.disks[${i}]: object`);
      if (typeof d.name !== 'string' || !isSafeName(d.name)) p.push(`vm.disks[${i}].name: letters, digits, ".", "-", "_"`);
      else if (names.has(d.name)) p.push(`vm.disks[${i}].name: duplicate "${d.name}"`);
      else names.add(d.name);
      if (!isInt(d.sizeBytes, 0)) p.push(`vm.disks[${i}].sizeBytes: integer ≥ 0`);
      if (!STORAGE_KINDS.includes(d.storage as never)) p.push(`vm.disks[${i}].storage: one of ${STORAGE_KINDS.join(', ')}`);
      return undefined;
    });
  }
  if (vm.annotations !== undefined && (!isObj(vm.annotations) || Object.values(vm.annotations).some((v) => typeof v !== 'string'))) {
    p.push('vm.annotations: map of strings');
  }
  if (vm.kernelArgs !== undefined && typeof vm.kernelArgs !== 'string') p.push('vm.kernelArgs: string');
  return p;
}

function kindProblems(r: Obj): string[] {
  const p: string[] = [];
  const bool = (field: string) => typeof r[field] !== 'boolean' && p.push(`${field}: boolean`);
  switch (r.kind as OperationKind) {
    case 'ensureVm':
      if (r.disks !== 'keep' && r.disks !== 'fresh') p.push('disks: "keep" or "fresh"');
      bool('start');
      break;
    case 'deleteVm':
      bool('deleteLocalDisks');
      if (r.discard !== undefined) bool('discard');
      break;
    case 'prepareIncoming':
      bool('blockMigration');
      break;
    case 'migrate': {
      bool('blockMigration');
      if (!isObj(r.to) || typeof r.to.migrationUri !== 'string') p.push('to.migrationUri: required');
      const t = r.tuning;
      if (!isObj(t)) p.push('tuning: required object');
      else {
        if (!isNum(t.bandwidthMiBps, 0)) p.push('tuning.bandwidthMiBps: number ≥ 0');
        if (!isNum(t.maxDowntimeMs, 0)) p.push('tuning.maxDowntimeMs: number ≥ 0');
        if (typeof t.autoConverge !== 'boolean') p.push('tuning.autoConverge: boolean');
        if (typeof t.postCopy !== 'boolean') p.push('tuning.postCopy: boolean');
        if (t.multifdChannels !== undefined && !isInt(t.multifdChannels, 1)) p.push('tuning.multifdChannels: integer ≥ 1');
      }
      break;
    }
    case 'copyDisks':
      if (!isObj(r.from) || typeof r.from.endpoint !== 'string' || !/^https?:\/\//.test(r.from.endpoint)) {
        p.push('from.endpoint: http(s) URL of the source agent');
      }
      break;
    case 'hotplug':
      if (!isInt(r.cpu, 1)) p.push('cpu: integer ≥ 1');
      if (!isInt(r.memoryBytes, 1)) p.push('memoryBytes: integer ≥ 1');
      break;
    case 'verify':
      if (!isInt(r.windowMs, 1) || (r.windowMs as number) > 600_000) p.push('windowMs: integer 1–600000');
      bool('expectRunning');
      if (r.heartbeatAbove !== undefined && !isInt(r.heartbeatAbove, 0)) p.push('heartbeatAbove: integer ≥ 0');
      if (r.acceptConsole !== undefined) bool('acceptConsole');
      break;
    default:
      break;
  }
  return p;
}

/** The request, or the list of what is wrong with it. */
export function validateOperationRequest(body: unknown): { request: OperationRequest } | { problems: string[] } {
  if (!isObj(body)) return { problems: ['body: JSON object required'] };
  if (!OPERATION_KINDS.includes(body.kind as OperationKind)) {
    return { problems: [`kind: one of ${OPERATION_KINDS.join(', ')}`] };
  }
  const problems = [...vmProblems(body.vm), ...kindProblems(body)];
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
