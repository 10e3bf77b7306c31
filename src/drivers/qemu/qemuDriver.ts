// The qemu driver: VMs are qemu-system-x86_64 processes this driver starts detached and drives
// over QMP (no libvirt). Everything it knows lives in files under the host's state folder
// (definition, pid file, QMP socket, serial log), so a restarted agent finds its VMs again.
//
// Live migration follows QEMU's documented sequences: the target waits with `-incoming defer -S`
// (incoming.ts), local disks are mirrored over NBD and the stream may be TLS-protected
// (outgoing.ts). This class assembles the parts and says which calls run under the VM's lock.
import type { Readable } from 'node:stream';
import { componentLogger } from '../../log';
import type { HostCapabilities } from '../../protocol/host';
import type { IncomingEndpoint, MigrationStatus, MigrationTuning } from '../../protocol/migration';
import type { VmInfo, VmSpec } from '../../protocol/vm';
import { VmLocks } from '../../vmLocks';
import { hostCapabilities } from '../common/hostCapabilities';
import { DEFAULT_LIMITS, type MachineLimits } from '../common/machineLimits';
import type { DiskReader, Driver, HostConfig } from '../driver';
import type { Accelerator } from './commandLine';
import { readDisk, writeDisk } from './diskCopy';
import { hotplug } from './hotplug';
import { completeIncoming, prepareIncoming, runPostCopyTarget } from './incoming';
import { listVms } from './inventory';
import { define, ensureDisks, start, stop, undefine } from './lifecycle';
import { abortMigration, advanceOutgoing, migrationMayHaveEnded, migrationStatus, resumeSource, startMigration, tuneMigration } from './outgoing';
import type { QemuHost } from './qemuHost';
import type { QmpEvent } from './qmp';
import { VmProcesses } from './vmProcesses';
import { VmRecords } from './vmRecords';

const log = componentLogger('qemu-driver');

export interface QemuDriverOptions {
  /** Accelerator, chosen explicitly (default tcg): never QEMU's kvm:tcg fallback. */
  accelerator?: Accelerator;
  /** qemu-system-x86_64 binary (default from PATH). */
  binary?: string;
  /**
   * Folder with ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem:
   * migration streams and NBD exports use TLS when set (unless `tls` is false).
   */
  tlsDir?: string;
  tls?: boolean;
  /** Hotplug headroom every VM is started with (max CPUs, max memory, DIMM slots). */
  limits?: Partial<MachineLimits>;
  /** How long stop waits for the guest to power off after the ACPI power button before quitting QEMU. */
  shutdownTimeoutMs?: number;
}

export class QemuDriver implements Driver {
  readonly kind = 'qemu' as const;
  private readonly q: QemuHost;

  constructor(host: HostConfig, opts: QemuDriverOptions = {}) {
    const settings = {
      accelerator: opts.accelerator ?? 'tcg',
      binary: opts.binary ?? 'qemu-system-x86_64',
      limits: { ...DEFAULT_LIMITS, ...opts.limits },
      shutdownTimeoutMs: opts.shutdownTimeoutMs ?? 30_000,
      tlsDir: opts.tlsDir !== undefined && opts.tls !== false ? opts.tlsDir : undefined,
    };
    const records = new VmRecords(host);
    const vms = new VmProcesses(host, settings, records, (id, ev) => this.onEvent(id, ev));
    this.q = { host, settings, records, vms, locks: new VmLocks() };
  }

  capabilities(): HostCapabilities {
    return hostCapabilities(this.q.host, 'qemu', this.q.settings.accelerator);
  }

  list(): Promise<VmInfo[]> {
    return listVms(this.q);
  }

  ensureDisks(vm: VmSpec, how: 'keep' | 'fresh'): Promise<void> {
    return this.locked(vm.id, () => ensureDisks(this.q, vm, how));
  }

  define(vm: VmSpec): Promise<void> {
    return this.locked(vm.id, () => define(this.q, vm));
  }

  undefine(id: string, opts: { deleteLocalDisks: boolean; deleteSharedDisks?: boolean }): Promise<void> {
    return this.locked(id, () => undefine(this.q, id, opts));
  }

  start(id: string): Promise<void> {
    return this.locked(id, () => start(this.q, id));
  }

  stop(id: string): Promise<void> {
    return this.locked(id, () => stop(this.q, id));
  }

  prepareIncoming(vm: VmSpec, opts: { blockMigration: boolean; tuning?: MigrationTuning; plaintext?: boolean }): Promise<IncomingEndpoint> {
    return this.locked(vm.id, () => prepareIncoming(this.q, vm, opts));
  }

  completeIncoming(id: string): Promise<void> {
    return this.locked(id, () => completeIncoming(this.q, id));
  }

  startMigration(id: string, to: IncomingEndpoint, tuning: MigrationTuning, opts: { blockMigration: boolean }): Promise<void> {
    return this.locked(id, () => startMigration(this.q, id, to, tuning, opts));
  }

  tuneMigration(id: string, tuning: MigrationTuning): Promise<void> {
    return this.locked(id, () => tuneMigration(this.q, id, tuning));
  }

  migrationStatus(id: string): Promise<MigrationStatus> {
    return this.locked(id, () => migrationStatus(this.q, id));
  }

  migrationMayHaveEnded(id: string, ms: number): Promise<void> {
    return migrationMayHaveEnded(this.q, id, ms);
  }

  abortMigration(id: string): Promise<void> {
    return this.locked(id, () => abortMigration(this.q, id));
  }

  resumeSource(id: string): Promise<void> {
    return this.locked(id, () => resumeSource(this.q, id));
  }

  readDisk(id: string, disk: string): Promise<DiskReader> {
    return readDisk(this.q, id, disk);
  }

  writeDisk(vm: VmSpec, disk: string, data: Readable, sizeBytes: number): Promise<void> {
    return this.locked(vm.id, () => writeDisk(this.q, vm, disk, data, sizeBytes));
  }

  hotplug(id: string, want: { cpu: number; memoryBytes: number }): Promise<void> {
    return this.locked(id, () => hotplug(this.q, id, want));
  }

  async close(): Promise<void> {
    this.q.vms.close();
  }

  /** Events only hurry things along; the same steps also happen on the next migrationStatus. */
  private onEvent(id: string, ev: QmpEvent): void {
    const hurry =
      (ev.event === 'BLOCK_JOB_READY') ||
      (ev.event === 'MIGRATION' && ev.data.status === 'completed');
    if (ev.event === 'MIGRATION') log.debug({ vm: id, status: ev.data.status }, 'migration event');
    if (hurry) {
      void this.locked(id, () => advanceOutgoing(this.q, id)).catch((err: Error) => log.warn({ vm: id, err: err.message }, 'advancing migration failed'));
    }
    if (ev.event === 'MIGRATION' && ev.data.status === 'postcopy-active') {
      void runPostCopyTarget(this.q, id).catch((err: Error) => log.warn({ vm: id, err: err.message }, 'starting post-copy target failed'));
    }
  }

  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.q.locks.run(id, fn);
  }
}
