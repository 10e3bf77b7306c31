// Where the libvirt driver keeps things on a host. Disks and images follow the layout every
// vmove driver shares (src/drivers/qemu/paths.ts); the rest is the libvirt driver's own.
// Pure: paths only, no I/O.
import path from 'node:path';
import type { HostConfig, VmSpec } from '../driver';
import type { DiskFile } from '../qemu/disks';
import { diskFormat, diskPath, imageFiles } from '../qemu/paths';

export { diskFormat, diskPath, imageFiles };

/** Per-VM files of this driver in the host's state folder. */
export const vmStateDir = (host: HostConfig, id: string): string => path.join(host.stateDir, 'libvirt', 'vms', id);
export const serialLogPath = (host: HostConfig, id: string): string => path.join(vmStateDir(host, id), 'serial.log');
/** A migration this host was prepared to receive (the VM it expects, until it runs here). */
export const incomingRecordPath = (host: HostConfig, id: string): string => path.join(vmStateDir(host, id), 'incoming.json');
export const vmsStateRoot = (host: HostConfig): string => path.join(host.stateDir, 'libvirt', 'vms');
/** The outgoing migration this host drives for the VM (survives an agent restart). */
export const outgoingRecordPath = (host: HostConfig, id: string): string => path.join(vmStateDir(host, id), 'outgoing.json');

/** The VM's disk files on this host; the first disk overlays the image's base disk. */
export function vmDiskFiles(host: HostConfig, vm: VmSpec, baseExists: boolean): DiskFile[] {
  const base = imageFiles(host, vm.image).baseDisk;
  return vm.disks.map((d, i) => ({
    path: diskPath(host, vm.id, d.name, d.storage),
    format: diskFormat(d.storage),
    sizeBytes: d.sizeBytes,
    ...(i === 0 && baseExists ? { base } : {}),
  }));
}
