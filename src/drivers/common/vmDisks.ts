// What the qemu and libvirt drivers do the same way with a VM's disk files (`files[i]` is the
// file of `vm.disks[i]`): make them, delete them, ready them for an incoming migration, check
// them before a boot, and find one to copy to another host.
import type { DiskSpec, VmSpec } from '../../protocol/vm';
import type { DiskReader, HostConfig } from '../driver';
import { type DiskFile, createDisk, deleteDisk, exists, readDiskFile } from './disks';
import { permanent } from './errors';

/** Create missing disks ('keep'), or recreate local and image-backed disks from the image ('fresh'). */
export async function ensureDiskFiles(vm: VmSpec, files: DiskFile[], how: 'keep' | 'fresh'): Promise<void> {
  for (const [i, d] of files.entries()) {
    const recreate = how === 'fresh' && (vm.disks[i]!.storage === 'Local' || d.base !== undefined);
    if (recreate || !(await exists(d.path))) await createDisk(d);
  }
}

/** Delete the disks on storage only this host sees (`deleteLocalDisks`) and the shared ones (`deleteSharedDisks`). */
export async function deleteDiskFiles(vm: VmSpec, files: DiskFile[], opts: { deleteLocalDisks: boolean; deleteSharedDisks?: boolean }): Promise<void> {
  for (const [i, d] of files.entries()) {
    const local = vm.disks[i]!.storage === 'Local';
    if ((local && opts.deleteLocalDisks) || (!local && opts.deleteSharedDisks)) await deleteDisk(d.path);
  }
}

export const hasLocalDisks = (vm: VmSpec): boolean => vm.disks.some((d) => d.storage === 'Local');

/** Refuses, before the target makes anything, a live move of local disks without block migration. */
export function requireBlockMigrationForLocalDisks(vm: VmSpec, blockMigration: boolean): void {
  const local = vm.disks.filter((d) => d.storage === 'Local');
  if (local.length > 0 && !blockMigration) {
    throw permanent(`${vm.id} has local disks (${local.map((d) => d.name).join(', ')}); only block migration can move them live`);
  }
}

/**
 * The target's disks of an incoming VM: local disks start as empty overlays of the image and are
 * filled by the source's NBD mirror; shared disks are the source's own files, visible here.
 */
export async function createIncomingDisks(host: HostConfig, vm: VmSpec, files: DiskFile[]): Promise<void> {
  for (const [i, d] of files.entries()) {
    if (vm.disks[i]!.storage === 'Local') await createDisk(d);
    else if (!(await exists(d.path))) throw permanent(`shared disk ${d.path} of ${vm.id} is not visible on ${host.nodeName}`);
  }
}

/** A VM boots only from disks that are all there. */
export async function requireDiskFiles(id: string, files: DiskFile[]): Promise<void> {
  for (const f of files) {
    if (!(await exists(f.path))) throw permanent(`disk ${f.path} of ${id} does not exist; ensure its disks first`);
  }
}

/** Where the disk named `disk` is in `disks`; a permanent error when the VM has none of that name. */
export function diskIndex(id: string, disks: DiskSpec[], disk: string): number {
  const i = disks.findIndex((d) => d.name === disk);
  if (i < 0) throw permanent(`${id} has no disk ${disk}`);
  return i;
}

/** A stopped VM's disk file as a stream for another host; a permanent error when it is not on this host. */
export async function readVmDisk(host: HostConfig, id: string, disk: string, file: DiskFile): Promise<DiskReader> {
  if (!(await exists(file.path))) throw permanent(`disk ${disk} of ${id} does not exist on ${host.nodeName}`);
  return readDiskFile(file.path);
}
