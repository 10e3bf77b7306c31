// Where the libvirt driver keeps its own things on a host (disks and images follow the layout it
// shares with the qemu driver: ../common/paths.ts). Pure: paths only, no I/O.
import path from 'node:path';
import type { HostConfig } from '../driver';

/** Per-VM files of this driver in the host's state folder. */
export const vmStateDir = (host: HostConfig, id: string): string => path.join(host.stateDir, 'libvirt', 'vms', id);
export const serialLogPath = (host: HostConfig, id: string): string => path.join(vmStateDir(host, id), 'serial.log');
/** A migration this host was prepared to receive (the VM it expects, until it runs here). */
export const incomingRecordPath = (host: HostConfig, id: string): string => path.join(vmStateDir(host, id), 'incoming.json');
export const vmsStateRoot = (host: HostConfig): string => path.join(host.stateDir, 'libvirt', 'vms');
/** The outgoing migration this host drives for the VM (survives an agent restart). */
export const outgoingRecordPath = (host: HostConfig, id: string): string => path.join(vmStateDir(host, id), 'outgoing.json');
