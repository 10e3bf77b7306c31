// A VM as hosts see it: what the controller asks a host to run (VmSpec) and what a host reports
// it runs (VmInfo). Drivers define and run VMs from these; the controller builds them from
// VirtualMachines.
import type { StorageKind } from '../api/types';

export interface DiskSpec {
  name: string;
  sizeBytes: number;
  storage: StorageKind;
}

/** A VM as a host sees it: everything a driver needs to define and run it. */
export interface VmSpec {
  /** `${namespace}_${name}`: stable across moves, safe in file names. */
  id: string;
  /** The VirtualMachine's UID: the identity a VM keeps across moves and rebuilds. */
  uid: string;
  image: string;
  cpu: number;
  memoryBytes: number;
  disks: DiskSpec[];
  kernelArgs?: string;
  /** The VirtualMachine's annotations (the sim driver reads its guest model from them). */
  annotations?: Record<string, string>;
  /**
   * Driver-specific runtime layout (e.g. hotplugged CPUs and DIMMs) a live-migration target must
   * reproduce: pass the source's `VmInfo.machine` here to prepareIncoming. Absent = boot layout.
   */
  machine?: string;
}

export type VmState =
  | 'Running'
  | 'Paused'
  | 'Stopped'
  /** Target side of a live migration: waiting for or receiving the stream. */
  | 'Incoming'
  /** Source side after a completed migration: paused, state handed to the target. */
  | 'Migrated'
  | 'Crashed';

export interface VmInfo {
  id: string;
  uid: string;
  state: VmState;
  cpu: number;
  memoryBytes: number;
  /** A counter the guest advances while it runs (heartbeat); absent when unknown. */
  heartbeat?: number;
  /**
   * Set when the driver cannot see this guest's heartbeat at all (why, in words): then a missing
   * heartbeat says nothing of the guest. Absent: the driver watches for it, and a missing one
   * means the guest has not come up (yet).
   */
  guestUnobservable?: string;
  /**
   * How much the guest has written to its console (bytes), where the driver can see it: output
   * that grows shows a guest that runs even before it heartbeats (it is booting).
   */
  consoleBytes?: number;
  /** Opaque runtime layout to hand to the target as `VmSpec.machine` (see there). */
  machine?: string;
}

export const vmId = (namespace: string, name: string): string => `${namespace}_${name}`;

/** `<namespace>_<name>` → its parts (names cannot contain "_", namespaces neither). */
export function parseVmId(id: string): { namespace: string; name: string } | undefined {
  const i = id.indexOf('_');
  if (i <= 0 || i === id.length - 1) return undefined;
  return { namespace: id.slice(0, i), name: id.slice(i + 1) };
}
