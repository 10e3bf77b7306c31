// What a host holds about each of its VMs (`<state>/qemu/vms/<id>/vm.json`): the spec, the machine
// layout, and the live migration it is part of, so a restarted agent carries on where it was.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { IncomingEndpoint, MigrationTuning } from '../../protocol/migration';
import type { VmSpec } from '../../protocol/vm';
import { type DiskFile, exists } from '../common/disks';
import { permanent } from '../common/errors';
import { imageFiles, vmDiskFiles } from '../common/paths';
import type { HostConfig } from '../driver';
import type { MachineLayout } from './machine';
import type { ArmedFeatures, DiskProgress } from './migrationPlan';
import { vmFiles } from './paths';

export interface VmRecord {
  spec: VmSpec;
  /** Layout of the running process, or of the next boot. */
  layout: MachineLayout;
  /** Target side of a live migration, until completeIncoming. */
  incoming?: { endpoint: IncomingEndpoint; blockMigration: boolean; nbdExports: string[] };
  /** Source side of a live migration, until it is cancelled or the source is resumed/stopped. */
  outgoing?: Outgoing;
}

export interface Outgoing {
  endpoint: IncomingEndpoint;
  blockMigration: boolean;
  armed: ArmedFeatures;
  tuning: MigrationTuning;
  /** Indices of the disks being mirrored. */
  mirrored: number[];
  /** `migrate` has been issued. */
  migrateIssued: boolean;
  postCopyStarted: boolean;
  /** Last disk progress seen (QEMU forgets block jobs once they end). */
  disk: DiskProgress;
}

export class VmRecords {
  /** Whether each image ships a base disk (looked up once per image; see launch/ensure). */
  private readonly imageHasBase = new Map<string, boolean>();

  constructor(private readonly host: HostConfig) {}

  async read(id: string): Promise<VmRecord | undefined> {
    try {
      const rec = JSON.parse(await readFile(vmFiles(this.host, id).definition, 'utf8')) as VmRecord;
      await this.noteImage(rec.spec.image);
      return rec;
    } catch {
      return undefined;
    }
  }

  async require(id: string): Promise<VmRecord> {
    const rec = await this.read(id);
    if (!rec) throw permanent(`${id} is not defined on ${this.host.nodeName}`);
    return rec;
  }

  async write(id: string, rec: VmRecord): Promise<void> {
    await this.noteImage(rec.spec.image);
    const file = vmFiles(this.host, id).definition;
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    await writeFile(tmp, JSON.stringify(rec, null, 2));
    await rename(tmp, file);
  }

  /** The VM's disk files on this host (the first overlays its image's base disk when the image has one). */
  async diskFiles(vm: VmSpec): Promise<DiskFile[]> {
    await this.noteImage(vm.image);
    return vmDiskFiles(this.host, vm, !!this.imageHasBase.get(vm.image));
  }

  private async noteImage(image: string): Promise<void> {
    if (!this.imageHasBase.has(image)) this.imageHasBase.set(image, await exists(imageFiles(this.host, image).baseDisk));
  }
}
