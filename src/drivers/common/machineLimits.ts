// The hotplug headroom every VM is started (qemu) or defined (libvirt) with: CPUs and memory a
// running VM may grow to, and the DIMM slots memory grows by.
import { GiB, MiB } from '../../api/quantity';

/** pc-dimm sizes must be multiples of this (Linux onlines memory in 128 MiB blocks). */
export const DIMM_ALIGN_BYTES = 128 * MiB;

export interface MachineLimits {
  maxCpus: number;
  maxMemoryBytes: number;
  memorySlots: number;
}

export const DEFAULT_LIMITS: MachineLimits = { maxCpus: 8, maxMemoryBytes: 16 * GiB, memorySlots: 8 };
