// What a libvirt host remembers about migrations in its state folder, so a restarted agent
// (a new driver instance) still knows them: the outgoing migration it drives for a VM, and the
// VMs it was prepared to receive (libvirt itself creates the target domain only once the
// stream starts, yet a prepared target is 'Incoming' to vmove from prepareIncoming on).
import { readdir, rm } from 'node:fs/promises';
import { readJsonFile, writeFileAtomic } from '../../fs/atomicFile';
import type { IncomingEndpoint, MigrationStatus, MigrationTuning } from '../../protocol/migration';
import type { VmSpec } from '../../protocol/vm';
import type { HostConfig } from '../driver';
import { incomingRecordPath, outgoingRecordPath, vmsStateRoot } from './layout';
import type { ArmedFeatures, LibvirtIncoming } from './migrationPlan';

/** An IncomingEndpoint from a libvirt host. */
export type LibvirtEndpoint = IncomingEndpoint & { libvirt: LibvirtIncoming };

/** The outgoing migration this host drives for one VM. */
export interface OutgoingRecord {
  endpoint: LibvirtEndpoint;
  blockMigration: boolean;
  tuning: MigrationTuning;
  armed: ArmedFeatures;
  startedAt: string;
  postCopyStarted: boolean;
  /** abortMigration asked for it: the migration ends cancelled, not failed. */
  aborting?: boolean;
  /** The migration is being restarted to arm a feature libvirt cannot switch on mid-way. */
  restarting?: boolean;
  /** How the migration call ended, when this driver saw it end. */
  result?: { ok: true } | { ok: false; error: string; transient: boolean };
  /** libvirt's statistics of the completed migration, read as it ended (libvirt keeps them in memory only). */
  final?: MigrationStatus;
}

interface IncomingRecord {
  spec: VmSpec;
  endpoint: LibvirtEndpoint;
}

export class MigrationRecords {
  constructor(private readonly host: HostConfig) {}

  outgoing(id: string): Promise<OutgoingRecord | undefined> {
    return readJsonFile<OutgoingRecord>(outgoingRecordPath(this.host, id));
  }

  async saveOutgoing(id: string, rec: OutgoingRecord): Promise<void> {
    await writeFileAtomic(outgoingRecordPath(this.host, id), JSON.stringify(rec, null, 2));
  }

  /** Changes an existing record (no-op when there is none). */
  async updateOutgoing(id: string, change: Partial<OutgoingRecord>): Promise<void> {
    const rec = await this.outgoing(id);
    if (rec) await this.saveOutgoing(id, { ...rec, ...change });
  }

  async clearOutgoing(id: string): Promise<void> {
    await rm(outgoingRecordPath(this.host, id), { force: true });
  }

  async markIncoming(spec: VmSpec, endpoint: LibvirtEndpoint): Promise<void> {
    const rec: IncomingRecord = { spec, endpoint };
    await writeFileAtomic(incomingRecordPath(this.host, spec.id), JSON.stringify(rec, null, 2));
  }

  async clearIncoming(id: string): Promise<void> {
    await rm(incomingRecordPath(this.host, id), { force: true });
  }

  /** VMs this host was prepared to receive and that do not run here yet, by id. */
  async preparedIncoming(): Promise<Map<string, VmSpec>> {
    const out = new Map<string, VmSpec>();
    let ids: string[];
    try {
      ids = await readdir(vmsStateRoot(this.host));
    } catch {
      return out;
    }
    for (const id of ids) {
      const rec = await readJsonFile<IncomingRecord>(incomingRecordPath(this.host, id));
      if (rec) out.set(id, rec.spec);
    }
    return out;
  }
}
