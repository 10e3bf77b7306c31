// Where the libvirt driver keeps things on a host. Disks and images follow the layout every
// vmove driver shares (src/drivers/qemu/paths.ts); the rest is the libvirt driver's own.
// Pure: paths only, no I/O.
import path from 'node:path';
import type { HostConfig } from '../driver';
import { diskFormat, diskPath, imageFiles, vmDiskFiles } from '../qemu/paths';

export { diskFormat, diskPath, imageFiles, vmDiskFiles };

/** Per-VM files of this driver in the host's state folder. */
export const vmStateDir = (host: HostConfig, id: string): string => path.join(host.stateDir, 'libvirt', 'vms', id);
export const serialLogPath = (host: HostConfig, id: string): string => path.join(vmStateDir(host, id), 'serial.log');
/** A migration this host was prepared to receive (the VM it expects, until it runs here). */
export const incomingRecordPath = (host: HostConfig, id: string): string => path.join(vmStateDir(host, id), 'incoming.json');
export const vmsStateRoot = (host: HostConfig): string => path.join(host.stateDir, 'libvirt', 'vms');
/** The outgoing migration this host drives for the VM (survives an agent restart). */
export const outgoingRecordPath = (host: HostConfig, id: string): string => path.join(vmStateDir(host, id), 'outgoing.json');
