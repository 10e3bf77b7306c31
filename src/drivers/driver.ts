// The one interface every hypervisor driver (sim, qemu, libvirt) implements.
// The agent composes these calls into idempotent operations; every method here must be
// safe to call again after a crash (define an already-defined VM, stop a stopped one, …).
import type { Readable } from 'node:stream';
import type { StorageKind } from '../api/types';
import type { DriverKind, HostCapabilities } from '../protocol/host';
import type { IncomingEndpoint, MigrationStatus, MigrationTuning } from '../protocol/migration';
import type { VmInfo, VmSpec } from '../protocol/vm';

/**
 * Drivers throw this when they know whether trying again may help (`transient`: busy host,
 * broken connection) or not (unknown image, no such VM). Other errors are classified by the
 * agent from their Node error code and message.
 */
export class DriverError extends Error {
  override readonly name = 'DriverError';
  constructor(
    message: string,
    readonly transient: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * completeIncoming: the migrated state has not fully arrived on the target yet. The source can
 * report its side complete a moment before the target has loaded the last of it (more so on a
 * loaded host), so this is not a failure: the agent waits and asks again.
 */
export class NotArrivedYet extends DriverError {
  constructor(message: string) {
    super(message, true);
  }
}

export interface DiskReader {
  sizeBytes: number;
  stream: Readable;
}

export interface Driver {
  readonly kind: DriverKind;
  capabilities(): HostCapabilities;
  /** Every VM this host holds a definition or process of. */
  list(): Promise<VmInfo[]>;
  /** Create missing disks ('keep'), or recreate local and image-backed disks from the image ('fresh'). */
  ensureDisks(vm: VmSpec, how: 'keep' | 'fresh'): Promise<void>;
  /** Register the VM with its current disks and resources; redefining updates them. */
  define(vm: VmSpec): Promise<void>;
  start(id: string): Promise<void>;
  stop(id: string): Promise<void>;
  /**
   * Forget the VM (stopping it first if needed). `deleteLocalDisks` deletes disks on storage only
   * this host sees; `deleteSharedDisks` also deletes its shared disks (only when the VM itself is deleted).
   */
  undefine(id: string, opts: { deleteLocalDisks: boolean; deleteSharedDisks?: boolean }): Promise<void>;

  /**
   * Idempotent: while the VM waits for its stream, answers the same endpoint again. `tuning` (the
   * migration's first tuning) lets the target arm multifd and post-copy to match the source.
   */
  /** `plaintext`: the move asked for an unencrypted stream; otherwise a driver that can encrypt it must (IncomingEndpoint.tls says which). */
  prepareIncoming(vm: VmSpec, opts: { blockMigration: boolean; tuning?: MigrationTuning; plaintext?: boolean }): Promise<IncomingEndpoint>;
  /** No-op when a migration of this VM to the same endpoint is active or completed. */
  startMigration(id: string, to: IncomingEndpoint, tuning: MigrationTuning, opts: { blockMigration: boolean }): Promise<void>;
  tuneMigration(id: string, tuning: MigrationTuning): Promise<void>;
  migrationStatus(id: string): Promise<MigrationStatus>;
  /**
   * Optional: resolves when the hypervisor says the outgoing migration ended (or `ms` passed).
   * The source is paused from the end of pre-copy until the target runs, so the agent looks at
   * once instead of at its next poll.
   */
  migrationMayHaveEnded?(id: string, ms: number): Promise<void>;
  /** Cancel an outgoing migration (no-op when none is active); the VM keeps running here. */
  abortMigration(id: string): Promise<void>;
  /** Target side: run the VM whose state arrived; NotArrivedYet while it is still arriving. */
  completeIncoming(id: string): Promise<void>;
  /** Source side, after a failed switch-over: run the VM here again. */
  resumeSource(id: string): Promise<void>;

  readDisk(id: string, disk: string): Promise<DiskReader>;
  writeDisk(vm: VmSpec, disk: string, data: Readable, sizeBytes: number): Promise<void>;

  hotplug(id: string, want: { cpu: number; memoryBytes: number }): Promise<void>;
  /** Release resources (sockets, timers); VMs keep running. */
  close(): Promise<void>;
}

/** Where a host keeps things and what it offers; one per agent (several agents may share a machine). */
export interface HostConfig {
  nodeName: string;
  /** Driver-private state: sockets, pid files, logs, operation records. */
  stateDir: string;
  /** Disks on storage only this host sees (Local). */
  localDir: string;
  /** Storage common to all hosts (SharedFile, SharedBlock) — NFS / SAN stand-in. */
  sharedDir: string;
  /** Images every host can read (`<imagesDir>/<image>/…`). */
  imagesDir: string;
  /** Address incoming migration streams are sent to. */
  migrationAddress: string;
  /** Inclusive port range for incoming migrations (and NBD exports) on this host. */
  migrationPorts: [number, number];
  capacity: { cpu: number; memoryBytes: number };
  storage: StorageKind[];
}
