// One host's libvirtd as the libvirt driver's parts share it: the host's configuration and the
// driver's settings, the connection to the daemon (kept open, opened again once it broke), the
// migrations this host remembers and the ones this process is performing, and the per-VM lock.
import { componentLogger, type Logger } from '../../log';
import type { VmSpec } from '../../protocol/vm';
import { VmLocks } from '../../vmLocks';
import { type DiskFile, exists } from '../common/disks';
import { permanent } from '../common/errors';
import type { MachineLimits } from '../common/machineLimits';
import { imageFiles, vmDiskFiles } from '../common/paths';
import type { HostConfig } from '../driver';
import { MigrationRecords } from './migrationRecords';
import { LibvirtConnection, type DomainRef } from './remote';
import { VirErr, isCode } from './rpc';

const log = componentLogger('libvirt-driver');

export interface LibvirtSettings {
  socketPath: string;
  /** The URI other hosts' libvirtd reach this one by (peer-to-peer migration). */
  peerUri: string;
  accelerator: 'tcg' | 'kvm';
  /** libvirt's domain type for the accelerator. */
  domainType: 'qemu' | 'kvm';
  limits: MachineLimits;
  shutdownTimeoutMs: number;
  /** Incoming migrations here may use post-copy. */
  postCopy: boolean;
  /** This host's libvirtd has migration certificates (qemu.conf migrate_tls_x509_cert_dir): streams use TLS. */
  migrationTls: boolean;
}

export class LibvirtHost {
  readonly records: MigrationRecords;
  /** Migration calls in flight from this process, by VM. */
  readonly performing = new Map<string, Promise<void>>();
  /** One mutating operation per VM at a time (status reads do not wait). */
  readonly locks = new VmLocks();
  readonly log: Logger;
  private conn: Promise<LibvirtConnection> | null = null;

  constructor(
    readonly host: HostConfig,
    readonly settings: LibvirtSettings,
  ) {
    this.log = log.child({ node: host.nodeName });
    this.records = new MigrationRecords(host);
  }

  async connection(): Promise<LibvirtConnection> {
    const current = this.conn ? await this.conn.catch(() => null) : null;
    if (current && !current.closed) return current;
    const next = LibvirtConnection.open(this.settings.socketPath);
    this.conn = next;
    next.catch(() => {
      if (this.conn === next) this.conn = null;
    });
    return next;
  }

  async close(): Promise<void> {
    const conn = this.conn;
    this.conn = null;
    if (conn) await (await conn.catch(() => null))?.close();
  }

  async lookup(c: LibvirtConnection, id: string): Promise<DomainRef | undefined> {
    try {
      return await c.lookupByName(id);
    } catch (err) {
      if (isCode(err, VirErr.NoDomain)) return undefined;
      throw err;
    }
  }

  async requireDomain(c: LibvirtConnection, id: string): Promise<DomainRef> {
    const d = await this.lookup(c, id);
    if (!d) throw permanent(`${id} is not defined on ${this.host.nodeName}`);
    return d;
  }

  async isActive(id: string): Promise<boolean> {
    const c = await this.connection();
    const d = await this.lookup(c, id);
    return d !== undefined && (await c.isActive(d));
  }

  async diskFiles(vm: VmSpec): Promise<DiskFile[]> {
    return vmDiskFiles(this.host, vm, await exists(imageFiles(this.host, vm.image).baseDisk));
  }
}
