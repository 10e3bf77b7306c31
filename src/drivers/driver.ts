// The one interface every hypervisor driver (sim, qemu, libvirt) implements.
// The agent composes these calls into idempotent operations; every method here must be
// safe to call again after a crash (define an already-defined VM, stop a stopped one, …).
import type { Readable } from 'node:stream';
import type { StorageKind } from '../api/types';

export type DriverKind = 'sim' | 'qemu' | 'libvirt';

/** What a host can do; advertised on the agent's Lease. */
export interface HostCapabilities {
  driver: DriverKind;
  storage: StorageKind[];
  cpu: number;
  memoryBytes: number;
  liveMigration: boolean;
  blockMigration: boolean;
  hotplug: boolean;
  /** Host (IP or name) the migration stream of incoming VMs should be sent to. */
  migrationAddress: string;
  /** Accelerator the driver runs guests with (kvm, tcg, sim). */
  accelerator: string;
}

export interface DiskSpec {
  name: string;
  sizeBytes: number;
  storage: StorageKind;
}

/** A VM as a host sees it: everything a driver needs to define and run it. */
export interface VmSpec {
  /** `${namespace}_${name}`: stable across moves, safe in file names. */
  id: string;
  /** The VirtualMachine's UID: the identity a VM keeps across moves and rebuilds. */
  uid: string;
  image: string;
  cpu: number;
  memoryBytes: number;
  disks: DiskSpec[];
  kernelArgs?: string;
  /** The VirtualMachine's annotations (the sim driver reads its guest model from them). */
  annotations?: Record<string, string>;
  /**
   * Driver-specific runtime layout (e.g. hotplugged CPUs and DIMMs) a live-migration target must
   * reproduce: pass the source's `VmInfo.machine` here to prepareIncoming. Absent = boot layout.
   */
  machine?: string;
}

export type VmState =
  | 'Running'
  | 'Paused'
  | 'Stopped'
  /** Target side of a live migration: waiting for or receiving the stream. */
  | 'Incoming'
  /** Source side after a completed migration: paused, state handed to the target. */
  | 'Migrated'
  | 'Crashed';

export interface VmInfo {
  id: string;
  uid: string;
  state: VmState;
  cpu: number;
  memoryBytes: number;
  /** A counter the guest advances while it runs (heartbeat); absent when unknown. */
  heartbeat?: number;
  /** Opaque runtime layout to hand to the target as `VmSpec.machine` (see there). */
  machine?: string;
}

/** Where an incoming migration should be sent; returned by prepareIncoming. */
export interface IncomingEndpoint {
  /** e.g. tcp:127.0.0.1:49152 */
  migrationUri: string;
  /** NBD export of the target's empty disks, for block migration. */
  nbd?: { host: string; port: number; exports: Record<string, string> };
  tls?: boolean;
  /** Post-copy is armed on the target (the source arms it too, so a later switch is possible). */
  postCopy?: boolean;
  /** Multifd channels the target expects (the source must use the same number). */
  multifdChannels?: number;
  /**
   * libvirt targets: the URI the source's libvirtd connects to (peer-to-peer), the address the
   * target listens on, and the target's path of each disk (by name) and of the serial log, so
   * the source can send libvirt the target's XML.
   */
  libvirt?: { peerUri: string; listenAddress: string; disks: Record<string, string>; serialLog: string };
}

/** Knobs the convergence ladder turns. */
export interface MigrationTuning {
  /** 0 = unlimited. */
  bandwidthMiBps: number;
  maxDowntimeMs: number;
  autoConverge: boolean;
  /** Switch to post-copy now (only when the policy allows it). */
  postCopy: boolean;
  multifdChannels?: number;
  /**
   * Whether a later tuning may turn on auto-converge / post-copy. Hypervisors fix these
   * capabilities when a migration starts, so drivers arm them up front; absent = allowed.
   */
  allowAutoConverge?: boolean;
  allowPostCopy?: boolean;
}

export type MigrationState =
  | 'none'
  | 'setup'
  | 'active'
  | 'postcopy'
  | 'completed'
  | 'failed'
  | 'cancelled';

export interface MigrationStatus {
  state: MigrationState;
  memoryTotalBytes: number;
  memoryTransferredBytes: number;
  memoryRemainingBytes: number;
  diskTotalBytes: number;
  diskTransferredBytes: number;
  diskRemainingBytes: number;
  dirtyRateBytesPerSecond: number;
  /** Dirty-sync passes so far. */
  iteration: number;
  downtimeMs?: number;
  totalTimeMs?: number;
  error?: string;
  /** With `error`: true when trying the migration again may succeed (peer died, link broke). */
  errorTransient?: boolean;
}

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
  prepareIncoming(vm: VmSpec, opts: { blockMigration: boolean; tuning?: MigrationTuning }): Promise<IncomingEndpoint>;
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
