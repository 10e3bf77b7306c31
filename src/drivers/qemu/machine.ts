// The shape of a QEMU machine as the driver runs it, and the pure decisions about it: how big
// it boots, what was hotplugged since, and what a resize has to plug or unplug. A live
// migration target must be started with exactly the source's layout (QEMU checks device by
// device), so the layout travels with the VM (VmInfo.machine → VmSpec.machine).
import { MiB } from '../../api/quantity';
import { DIMM_ALIGN_BYTES, type MachineLimits } from '../common/machineLimits';

export interface HotpluggedCpu {
  /** QEMU device id. */
  id: string;
  socketId: number;
  coreId: number;
  threadId: number;
}

export interface Dimm {
  /** QEMU device id; its memory backend is `${id}-mem`. */
  id: string;
  sizeBytes: number;
}

export interface MachineLayout {
  bootCpus: number;
  maxCpus: number;
  bootMemoryBytes: number;
  maxMemoryBytes: number;
  memorySlots: number;
  /** Devices added after boot, in the order they were plugged. */
  cpus: HotpluggedCpu[];
  dimms: Dimm[];
}

/** The layout a fresh boot of `cpu` CPUs and `memoryBytes` gets: everything at boot, nothing plugged. */
export function bootLayout(cpu: number, memoryBytes: number, limits: MachineLimits): MachineLayout {
  if (!Number.isInteger(cpu) || cpu < 1) throw new Error(`cpu must be a positive integer, got ${cpu}`);
  if (memoryBytes < 64 * MiB || memoryBytes % (2 * MiB) !== 0) {
    throw new Error(`memory must be at least 64 MiB and a multiple of 2 MiB, got ${memoryBytes} bytes`);
  }
  return {
    bootCpus: cpu,
    maxCpus: Math.max(limits.maxCpus, cpu),
    bootMemoryBytes: memoryBytes,
    maxMemoryBytes: Math.max(limits.maxMemoryBytes, memoryBytes),
    memorySlots: limits.memorySlots,
    cpus: [],
    dimms: [],
  };
}

export const layoutCpus = (l: MachineLayout): number => l.bootCpus + l.cpus.length;
export const layoutMemoryBytes = (l: MachineLayout): number => l.bootMemoryBytes + l.dimms.reduce((s, d) => s + d.sizeBytes, 0);

/** One slot of QEMU's query-hotpluggable-cpus answer. */
export interface HotpluggableCpuSlot {
  type: string;
  props: { 'socket-id'?: number; 'core-id'?: number; 'thread-id'?: number; 'node-id'?: number };
  'qom-path'?: string;
}

export type HotplugStep =
  | { kind: 'addCpu'; cpu: HotpluggedCpu; driver: string }
  | { kind: 'removeCpu'; id: string }
  | { kind: 'addDimm'; dimm: Dimm }
  | { kind: 'removeDimm'; id: string };

export class HotplugImpossible extends Error {
  override readonly name = 'HotplugImpossible';
}

/**
 * What to plug or unplug to go from `layout` to `want`. CPUs and memory added after boot can
 * be removed again (latest first); what the machine booted with cannot.
 */
export function planHotplug(
  layout: MachineLayout,
  want: { cpu: number; memoryBytes: number },
  freeCpuSlots: HotpluggableCpuSlot[],
): HotplugStep[] {
  const steps: HotplugStep[] = [];
  const cpus = layoutCpus(layout);
  if (want.cpu > layout.maxCpus) {
    throw new HotplugImpossible(`cannot grow to ${want.cpu} CPUs: this VM was started with at most ${layout.maxCpus}`);
  }
  if (want.cpu < layout.bootCpus) {
    throw new HotplugImpossible(`cannot shrink to ${want.cpu} CPUs: the VM booted with ${layout.bootCpus} and those cannot be unplugged`);
  }
  if (want.cpu > cpus) {
    const slots = [...freeCpuSlots].sort(
      (a, b) => (a.props['socket-id'] ?? 0) - (b.props['socket-id'] ?? 0) || (a.props['core-id'] ?? 0) - (b.props['core-id'] ?? 0) || (a.props['thread-id'] ?? 0) - (b.props['thread-id'] ?? 0),
    );
    if (slots.length < want.cpu - cpus) throw new HotplugImpossible(`only ${slots.length} free CPU slots for ${want.cpu - cpus} more CPUs`);
    for (const slot of slots.slice(0, want.cpu - cpus)) {
      const socketId = slot.props['socket-id'] ?? 0;
      const coreId = slot.props['core-id'] ?? 0;
      const threadId = slot.props['thread-id'] ?? 0;
      steps.push({ kind: 'addCpu', driver: slot.type, cpu: { id: `cpu-s${socketId}c${coreId}t${threadId}`, socketId, coreId, threadId } });
    }
  }

  const memory = layoutMemoryBytes(layout);
  if (want.memoryBytes > memory) {
    const add = want.memoryBytes - memory;
    if (add % DIMM_ALIGN_BYTES !== 0) {
      throw new HotplugImpossible(`memory can only grow in steps of ${DIMM_ALIGN_BYTES / MiB} MiB; ${add / MiB} MiB requested`);
    }
    if (want.memoryBytes > layout.maxMemoryBytes) {
      throw new HotplugImpossible(`cannot grow memory to ${want.memoryBytes / MiB} MiB: this VM was started with at most ${layout.maxMemoryBytes / MiB} MiB`);
    }
    if (layout.dimms.length >= layout.memorySlots) throw new HotplugImpossible(`all ${layout.memorySlots} memory slots are in use`);
    steps.push({ kind: 'addDimm', dimm: { id: nextDimmId(layout), sizeBytes: add } });
  } else if (want.memoryBytes < memory) {
    // Unplug the most recent DIMMs while they fit in what has to go; the rest must match exactly.
    let remove = memory - want.memoryBytes;
    for (const dimm of [...layout.dimms].reverse()) {
      if (remove === 0 || dimm.sizeBytes > remove) break;
      steps.push({ kind: 'removeDimm', id: dimm.id });
      remove -= dimm.sizeBytes;
    }
    if (remove !== 0) {
      throw new HotplugImpossible(
        `cannot shrink memory to ${want.memoryBytes / MiB} MiB while running: only whole hotplugged DIMMs can be removed ` +
          `(boot memory ${layout.bootMemoryBytes / MiB} MiB, DIMMs ${layout.dimms.map((d) => d.sizeBytes / MiB).join(', ') || 'none'} MiB); a cold resize can`,
      );
    }
  }
  // CPUs leave last: under TCG, QEMU 7.2 corrupts its heap and dies when a DIMM is unplugged after
  // a vCPU was (4 of 4 measured, and 4 of 8 within one resize; the other order, 0 of 4).
  if (want.cpu < cpus) {
    for (const cpu of layout.cpus.slice(want.cpu - cpus).reverse()) steps.push({ kind: 'removeCpu', id: cpu.id });
  }
  return steps;
}

function nextDimmId(layout: MachineLayout): string {
  const used = new Set(layout.dimms.map((d) => d.id));
  for (let i = 0; ; i++) if (!used.has(`dimm${i}`)) return `dimm${i}`;
}

/** Apply a step that QEMU has carried out to the recorded layout. */
export function applyStep(layout: MachineLayout, step: HotplugStep): MachineLayout {
  switch (step.kind) {
    case 'addCpu':
      return { ...layout, cpus: [...layout.cpus, step.cpu] };
    case 'removeCpu':
      return { ...layout, cpus: layout.cpus.filter((c) => c.id !== step.id) };
    case 'addDimm':
      return { ...layout, dimms: [...layout.dimms, step.dimm] };
    case 'removeDimm':
      return { ...layout, dimms: layout.dimms.filter((d) => d.id !== step.id) };
  }
}

/** Parse a layout that travelled as VmSpec.machine; undefined when absent or not ours. */
export function parseLayout(text: string | undefined): MachineLayout | undefined {
  if (!text) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const l = v as Partial<MachineLayout>;
  const ints = [l.bootCpus, l.maxCpus, l.bootMemoryBytes, l.maxMemoryBytes, l.memorySlots];
  if (!ints.every((n) => Number.isInteger(n)) || !Array.isArray(l.cpus) || !Array.isArray(l.dimms)) return undefined;
  return l as MachineLayout;
}
