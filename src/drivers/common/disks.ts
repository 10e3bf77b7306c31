// VM disk files, made and copied with qemu-img. Every file is written to a temporary name and
// renamed into place, so a crash never leaves a half-made disk under the real name.
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { access, mkdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { DiskReader } from '../driver';

const run = promisify(execFile);

export interface DiskFile {
  path: string;
  format: 'qcow2' | 'raw';
  sizeBytes: number;
  /** Base image this disk overlays (qcow2) or starts as a copy of (raw); none for blank data disks. */
  base?: string;
}

export async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

async function qemuImg(args: string[]): Promise<string> {
  try {
    return (await run('qemu-img', args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`qemu-img ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

const tempName = (file: string): string => `${file}.tmp-${process.pid}-${Date.now()}`;

/** Create the disk as a fresh overlay of its base (or blank); replaces an existing file. */
export async function createDisk(d: DiskFile): Promise<void> {
  await mkdir(path.dirname(d.path), { recursive: true });
  const tmp = tempName(d.path);
  try {
    if (d.format === 'qcow2') {
      const backing = d.base ? ['-F', 'qcow2', '-b', d.base] : [];
      await qemuImg(['create', '-q', '-f', 'qcow2', ...backing, tmp, String(d.sizeBytes)]);
    } else if (d.base) {
      await qemuImg(['convert', '-q', '-O', 'raw', d.base, tmp]);
      await qemuImg(['resize', '-q', '-f', 'raw', tmp, String(d.sizeBytes)]);
    } else {
      await qemuImg(['create', '-q', '-f', 'raw', tmp, String(d.sizeBytes)]);
    }
    await rename(tmp, d.path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * A stopped VM's disk file as a stream. A qcow2 overlay holds only the clusters the guest wrote,
 * so the file itself is the compact form: streaming it needs no temporary copy or convert pass.
 */
export async function readDiskFile(file: string): Promise<DiskReader> {
  const { size } = await stat(file);
  return { sizeBytes: size, stream: createReadStream(file) };
}

/** Receive a disk file; a qcow2 overlay is pointed at this host's copy of its base image. */
export async function writeDiskFile(d: DiskFile, data: Readable, sizeBytes: number): Promise<void> {
  await mkdir(path.dirname(d.path), { recursive: true });
  const tmp = tempName(d.path);
  try {
    await pipeline(data, createWriteStream(tmp));
    const { size } = await stat(tmp);
    if (size !== sizeBytes) throw new Error(`disk ${d.path}: received ${size} bytes, expected ${sizeBytes}`);
    if (d.format === 'qcow2') {
      await qemuImg(['check', '-q', '-f', 'qcow2', tmp]);
      if (d.base) await qemuImg(['rebase', '-u', '-f', 'qcow2', '-F', 'qcow2', '-b', d.base, tmp]);
    }
    await rename(tmp, d.path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export async function deleteDisk(file: string): Promise<void> {
  await rm(file, { force: true });
  // Remove the VM's disk folder once its last disk is gone.
  await rmdir(path.dirname(file)).catch(() => undefined);
}
