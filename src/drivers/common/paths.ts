// Where the qemu and libvirt drivers keep disks and find images on a host (the sim keeps its own).
// Pure: paths only, no I/O.
import path from 'node:path';
import type { StorageKind } from '../../api/types';
import type { VmSpec } from '../../protocol/vm';
import type { HostConfig } from '../driver';
import type { DiskFile } from './disks';

/** `<local|shared>/<vmId>/<disk>.qcow2`; SharedBlock disks are raw files standing in for a LUN. */
export function diskPath(host: HostConfig, vmId: string, disk: string, storage: StorageKind): string {
  const root = storage === 'Local' ? host.localDir : host.sharedDir;
  return path.join(root, vmId, `${disk}.${diskFormat(storage)}`);
}

export const diskFormat = (storage: StorageKind): 'qcow2' | 'raw' => (storage === 'SharedBlock' ? 'raw' : 'qcow2');

/** An image folder: a kernel and initrd for direct boot, a base disk the first disk overlays, a default command line. */
export interface ImageFiles {
  dir: string;
  kernel: string;
  initrd: string;
  baseDisk: string;
  cmdline: string;
}

/** `image` is a safe path segment: the agent refuses other names before a driver sees them (src/agent/requestValidation.ts). */
export function imageFiles(host: HostConfig, image: string): ImageFiles {
  const dir = path.join(host.imagesDir, image);
  return {
    dir,
    kernel: path.join(dir, 'vmlinuz'),
    initrd: path.join(dir, 'initrd.img'),
    baseDisk: path.join(dir, 'disk.qcow2'),
    cmdline: path.join(dir, 'cmdline'),
  };
}

/** The VM's disk files on this host; the first disk overlays the image's base disk when there is one. */
export function vmDiskFiles(host: HostConfig, vm: VmSpec, baseExists: boolean): DiskFile[] {
  const base = imageFiles(host, vm.image).baseDisk;
  return vm.disks.map((d, i) => ({
    path: diskPath(host, vm.id, d.name, d.storage),
    format: diskFormat(d.storage),
    sizeBytes: d.sizeBytes,
    ...(i === 0 && baseExists ? { base } : {}),
  }));
}
