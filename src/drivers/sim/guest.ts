// What a simulated guest does, read from the VirtualMachine's annotations: how fast it dirties
// memory, and which operations should fail on which node (failure injection for tests and
// demos). Pure.
import type { OperationKind } from '../../protocol/operations';
import type { VmSpec } from '../../protocol/vm';
import { MiB, type GuestModel } from './convergence';

export const SIM_ANNOTATIONS = {
  dirtyRateMiBps: 'sim.vmove.dev/dirty-rate-mibps',
  workingSetMiB: 'sim.vmove.dev/working-set-mib',
  neverConverge: 'sim.vmove.dev/never-converge',
  /** `kind[@node],…`: those operations fail with a permanent error (on that node only). */
  failAt: 'sim.vmove.dev/fail-at',
  /** Same, with a transient error. */
  failTransientAt: 'sim.vmove.dev/fail-transient-at',
  /** Simulated seconds a guest takes to boot: until then it prints no heartbeat (default 0). */
  bootSeconds: 'sim.vmove.dev/boot-seconds',
} as const;

export interface GuestDefaults {
  dirtyRateMiBps: number;
  /** Working set as a fraction of memory when the annotation does not say. */
  workingSetFraction: number;
}

export const DEFAULT_GUEST: GuestDefaults = { dirtyRateMiBps: 16, workingSetFraction: 0.25 };

function positiveNumber(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** The guest of a VM running with `memoryBytes`, as its annotations describe it. */
export function guestModel(annotations: VmSpec['annotations'], memoryBytes: number, defaults: GuestDefaults): GuestModel {
  const a = annotations ?? {};
  const neverConverge = a[SIM_ANNOTATIONS.neverConverge] === 'true';
  const dirtyMiBps = positiveNumber(a[SIM_ANNOTATIONS.dirtyRateMiBps]) ?? defaults.dirtyRateMiBps;
  const wsMiB = positiveNumber(a[SIM_ANNOTATIONS.workingSetMiB]);
  const workingSetBytes = Math.min(
    memoryBytes,
    wsMiB !== undefined ? wsMiB * MiB : neverConverge ? memoryBytes : memoryBytes * defaults.workingSetFraction,
  );
  return { memoryBytes, workingSetBytes, dirtyRateBytesPerSecond: dirtyMiBps * MiB, neverConverge };
}

/** Simulated seconds the guest of a VM with these annotations takes from boot to its first heartbeat. */
export function bootSeconds(annotations: VmSpec['annotations']): number {
  return Math.floor(positiveNumber(annotations?.[SIM_ANNOTATIONS.bootSeconds]) ?? 0);
}

export interface InjectedFailure {
  transient: boolean;
}

/** `kind[@node]` entries of one annotation that name `kind` on `node` (or on every node). */
function names(list: string | undefined, kind: OperationKind, node: string): boolean {
  if (!list) return false;
  return list
    .split(',')
    .map((e) => e.trim())
    .some((entry) => {
      const [k, n] = entry.split('@');
      return k === kind && (n === undefined || n === node);
    });
}

/** The failure the annotations inject into `kind` on `node`, if any. Permanent wins. */
export function injectedFailure(
  annotations: Record<string, string> | undefined,
  kind: OperationKind,
  node: string,
): InjectedFailure | undefined {
  if (names(annotations?.[SIM_ANNOTATIONS.failAt], kind, node)) return { transient: false };
  if (names(annotations?.[SIM_ANNOTATIONS.failTransientAt], kind, node)) return { transient: true };
  return undefined;
}
