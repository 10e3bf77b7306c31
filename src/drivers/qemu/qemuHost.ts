// One host's QEMU VMs as the qemu driver's parts share them: the host's configuration and the
// driver's settings, the VMs' records and processes, and the per-VM lock every change runs under.
import type { VmSpec } from '../../protocol/vm';
import type { VmLocks } from '../../vmLocks';
import { permanent } from '../common/errors';
import type { MachineLimits } from '../common/machineLimits';
import type { HostConfig } from '../driver';
import type { Accelerator } from './commandLine';
import { bootLayout, type MachineLayout } from './machine';
import type { VmProcesses } from './vmProcesses';
import type { VmRecords } from './vmRecords';

export interface QemuSettings {
  accelerator: Accelerator;
  binary: string;
  limits: MachineLimits;
  shutdownTimeoutMs: number;
  /** Certificates of TLS-protected migration streams and NBD exports; undefined: no TLS. */
  tlsDir: string | undefined;
}

export interface QemuHost {
  host: HostConfig;
  settings: QemuSettings;
  records: VmRecords;
  vms: VmProcesses;
  /** One operation per VM at a time: QMP sequences must not interleave. */
  locks: VmLocks;
}

/** The layout a fresh boot of the VM gets; a permanent error for a size QEMU cannot boot. */
export function bootLayoutOf(q: QemuHost, vm: VmSpec): MachineLayout {
  try {
    return bootLayout(vm.cpu, vm.memoryBytes, q.settings.limits);
  } catch (err) {
    throw permanent(`${vm.id}: ${(err as Error).message}`);
  }
}
