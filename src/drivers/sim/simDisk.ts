// Simulated disks: sparse placeholder files whose first block holds a small JSON header (the
// VM's uid, the disk, and a generation counter the guest bumps at every boot). A disk copied
// from another host keeps the source's uid and generation; a disk created fresh from the image
// starts at generation 0 — so tests can tell a copied disk from a rebuilt one, and local data
// lost on a rebuild is visible.
//
// The file's apparent size is the disk's size; only the header block is allocated. On the wire
// (readDisk/writeDisk, block migration) a disk travels as its header block alone, the way a
// sparse-aware copy sends only allocated data.
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../fs/atomicFile';
import type { StorageKind } from '../../api/types';
import type { DiskSpec, VmSpec } from '../../protocol/vm';
import { DriverError, type HostConfig } from '../driver';

export const SIM_DISK_MAGIC = 'vmove-sim-disk/1';
export const SIM_DISK_HEADER_BYTES = 4096;
export const SIM_DISK_SUFFIX = '.simdisk';

export interface SimDiskHeader {
  magic: typeof SIM_DISK_MAGIC;
  vmUid: string;
  vmId: string;
  disk: string;
  storage: StorageKind;
  sizeBytes: number;
  image: string;
  /** Boots of a guest from this disk since it was created from the image. */
  generation: number;
  /** How this file came to be on this host. */
  origin: 'image' | 'copy' | 'empty';
}

export function simDiskDir(host: Pick<HostConfig, 'localDir' | 'sharedDir'>, storage: StorageKind, vmId: string): string {
  return join(storage === 'Local' ? host.localDir : host.sharedDir, vmId);
}

export function simDiskPath(host: Pick<HostConfig, 'localDir' | 'sharedDir'>, vmId: string, disk: Pick<DiskSpec, 'name' | 'storage'>): string {
  return join(simDiskDir(host, disk.storage, vmId), `${disk.name}${SIM_DISK_SUFFIX}`);
}

export function encodeHeader(header: SimDiskHeader): Buffer {
  const json = Buffer.from(`${JSON.stringify(header)}\n`, 'utf8');
  if (json.length > SIM_DISK_HEADER_BYTES) throw new DriverError(`sim disk header for ${header.vmId}/${header.disk} too large`, false);
  const block = Buffer.alloc(SIM_DISK_HEADER_BYTES);
  json.copy(block);
  return block;
}

export function decodeHeader(block: Buffer, what: string): SimDiskHeader {
  const end = block.indexOf(0x0a);
  let parsed: unknown;
  try {
    parsed = JSON.parse(block.subarray(0, end < 0 ? block.length : end).toString('utf8'));
  } catch {
    throw new DriverError(`${what} is not a sim disk`, false);
  }
  if ((parsed as SimDiskHeader | null)?.magic !== SIM_DISK_MAGIC) throw new DriverError(`${what} is not a sim disk`, false);
  return parsed as SimDiskHeader;
}

/** Write a disk file: the header block, then a hole up to the disk's size. */
export async function writeSimDisk(path: string, header: SimDiskHeader): Promise<void> {
  const block = encodeHeader(header);
  // Write header + size atomically: a half-written disk must never look like a good one.
  await writeFileAtomic(path, block, { fsync: false });
  const fh = await open(path, 'r+');
  try {
    await fh.truncate(Math.max(SIM_DISK_HEADER_BYTES, header.sizeBytes));
  } finally {
    await fh.close();
  }
}

/** The first block of a disk file, or undefined when the file does not exist. */
async function readFirstBlock(path: string): Promise<Buffer | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const block = Buffer.alloc(SIM_DISK_HEADER_BYTES);
    const { bytesRead } = await fh.read(block, 0, SIM_DISK_HEADER_BYTES, 0);
    return block.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export async function readSimDiskHeader(path: string): Promise<SimDiskHeader | undefined> {
  const block = await readFirstBlock(path);
  return block && decodeHeader(block, path);
}

/** Rewrite the header block in place (the hole after it stays). */
export async function updateSimDiskHeader(path: string, update: (h: SimDiskHeader) => SimDiskHeader): Promise<void> {
  const current = await readSimDiskHeader(path);
  if (!current) throw new DriverError(`disk ${path} is missing`, false);
  const fh = await open(path, 'r+');
  try {
    await fh.write(encodeHeader(update(current)), 0, SIM_DISK_HEADER_BYTES, 0);
  } finally {
    await fh.close();
  }
}

export function freshHeader(vm: VmSpec, disk: DiskSpec, origin: 'image' | 'empty'): SimDiskHeader {
  return {
    magic: SIM_DISK_MAGIC,
    vmUid: vm.uid,
    vmId: vm.id,
    disk: disk.name,
    storage: disk.storage,
    sizeBytes: disk.sizeBytes,
    image: vm.image,
    generation: 0,
    origin,
  };
}

export async function removeSimDisks(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** The header block as it travels between hosts. */
export async function readSimDiskBlock(path: string): Promise<Buffer> {
  const block = await readFirstBlock(path);
  if (!block) throw new DriverError(`disk ${path} is missing`, false);
  decodeHeader(block, path);
  return Buffer.concat([block, Buffer.alloc(SIM_DISK_HEADER_BYTES - block.length)]);
}
