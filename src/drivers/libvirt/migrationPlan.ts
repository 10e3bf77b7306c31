// Pure translations between vmove's migration vocabulary and libvirt's: tuning + endpoint →
// virDomainMigrate flags and typed parameters; job statistics + domain state → MigrationStatus
// and VmState.
import type { IncomingEndpoint, MigrationState, MigrationStatus, MigrationTuning } from '../../protocol/migration';
import type { VmState } from '../../protocol/vm';
import { uriHost } from '../common/uriHost';
import { DomainState, JobType, MigrateFlag, PausedReason, RunningReason, ShutoffReason, type JobStats, type TypedParam } from './remote';

/** What a libvirt target tells the source (see IncomingEndpoint.libvirt). */
export type LibvirtIncoming = NonNullable<IncomingEndpoint['libvirt']>;

/** Features libvirt fixes when a migration starts. */
export interface ArmedFeatures {
  autoConverge: boolean;
  postCopy: boolean;
  parallelConnections: number;
}

/**
 * What to arm. libvirt offers no way to turn auto-converge on during a migration and no ceiling
 * for its throttle, so auto-converge is armed only when the tuning asks for it (the driver
 * restarts the migration when a later tuning does). Post-copy costs nothing until switched to,
 * so it is armed whenever allowed; QEMU cannot combine it with multifd, and vmove does not
 * combine it with disk mirroring.
 */
export function armedFeatures(t: MigrationTuning, targetPostCopy: boolean, blockMigration: boolean): ArmedFeatures {
  const parallelConnections = t.multifdChannels ?? 0;
  return {
    autoConverge: t.autoConverge,
    postCopy: targetPostCopy && !blockMigration && parallelConnections === 0 && (t.postCopy || t.allowPostCopy !== false),
    parallelConnections,
  };
}

export function migrationFlags(armed: ArmedFeatures, opts: { blockMigration: boolean; sharedDisks: boolean; tls: boolean }): number {
  let flags = MigrateFlag.Live | MigrateFlag.PeerToPeer | MigrateFlag.PersistDest | MigrateFlag.AbortOnError;
  // Memory and NBD streams over TLS with both daemons' migrate_tls_x509_cert_dir; each end checks the other.
  if (opts.tls) flags |= MigrateFlag.Tls;
  if (opts.blockMigration) flags |= MigrateFlag.NonSharedDisk;
  // libvirt calls a migration of disks it does not copy "unsafe" unless they sit on a network
  // file system it recognises; vmove's SharedFile/SharedBlock storage classes are the
  // operator's statement that every host sees the same files.
  if (opts.sharedDisks) flags |= MigrateFlag.Unsafe;
  if (armed.autoConverge) flags |= MigrateFlag.AutoConverge;
  if (armed.postCopy) flags |= MigrateFlag.Postcopy;
  if (armed.parallelConnections > 0) flags |= MigrateFlag.Parallel;
  return flags;
}

/** VIR_MIGRATE_PARAM_* names. */
export const MigrateParam = {
  Uri: 'migrate_uri',
  DestXml: 'destination_xml',
  PersistXml: 'persistent_xml',
  Bandwidth: 'bandwidth',
  ListenAddress: 'listen_address',
  MigrateDisks: 'migrate_disks',
  ParallelConnections: 'parallel.connections',
  AutoConvergeInitial: 'auto_converge.initial',
  AutoConvergeIncrement: 'auto_converge.increment',
} as const;

export function migrationParams(p: {
  to: LibvirtIncoming;
  destXml: string;
  persistXml: string;
  tuning: MigrationTuning;
  armed: ArmedFeatures;
  /** Target devices (vda, …) of the disks to copy; empty for shared storage. */
  copyDisks: string[];
}): TypedParam[] {
  const params: TypedParam[] = [
    { field: MigrateParam.Uri, type: 'string', value: `tcp://${uriHost(p.to.listenAddress)}` },
    { field: MigrateParam.ListenAddress, type: 'string', value: p.to.listenAddress },
    { field: MigrateParam.DestXml, type: 'string', value: p.destXml },
    { field: MigrateParam.PersistXml, type: 'string', value: p.persistXml },
  ];
  // No bandwidth parameter means libvirt's default: unlimited.
  if (p.tuning.bandwidthMiBps > 0) params.push({ field: MigrateParam.Bandwidth, type: 'ullong', value: Math.round(p.tuning.bandwidthMiBps) });
  for (const dev of p.copyDisks) params.push({ field: MigrateParam.MigrateDisks, type: 'string', value: dev });
  if (p.armed.parallelConnections > 0) params.push({ field: MigrateParam.ParallelConnections, type: 'int', value: p.armed.parallelConnections });
  // The throttle's step the controller chose (libvirt's default is QEMU's: 20 % initial, 10 % more a step).
  const step = p.tuning.autoConvergeStepPercent;
  if (p.armed.autoConverge && step !== undefined) {
    params.push({ field: MigrateParam.AutoConvergeInitial, type: 'int', value: step }, { field: MigrateParam.AutoConvergeIncrement, type: 'int', value: step });
  }
  return params;
}

/** VIR_DOMAIN_JOB_* statistics names. */
const Job = {
  Operation: 'operation',
  TimeElapsed: 'time_elapsed',
  Downtime: 'downtime',
  MemoryTotal: 'memory_total',
  MemoryProcessed: 'memory_processed',
  MemoryRemaining: 'memory_remaining',
  MemoryDirtyRate: 'memory_dirty_rate',
  MemoryPageSize: 'memory_page_size',
  MemoryIteration: 'memory_iteration',
  DiskTotal: 'disk_total',
  DiskProcessed: 'disk_processed',
  DiskRemaining: 'disk_remaining',
  ErrorMessage: 'errmsg',
} as const;

/** virDomainJobOperation of an outgoing migration. */
export const JOB_OPERATION_MIGRATION_OUT = 5;
const DEFAULT_PAGE_SIZE = 4096;

const num = (stats: JobStats, field: string): number => {
  const v = stats.params.get(field);
  return typeof v === 'number' ? v : 0;
};

export const isActiveJob = (stats: JobStats): boolean => stats.type === JobType.Bounded || stats.type === JobType.Unbounded;

export const isOutgoingMigration = (stats: JobStats): boolean => {
  const op = stats.params.get(Job.Operation);
  // libvirt before 3.3 did not report the operation; an active job then is taken at its word.
  return op === undefined || op === JOB_OPERATION_MIGRATION_OUT;
};

export const jobErrorMessage = (stats: JobStats): string | undefined => {
  const v = stats.params.get(Job.ErrorMessage);
  return typeof v === 'string' && v !== '' ? v : undefined;
};

function jobState(stats: JobStats, postCopy: boolean): MigrationState {
  switch (stats.type) {
    case JobType.Bounded:
    case JobType.Unbounded:
      if (postCopy) return 'postcopy';
      return stats.params.has(Job.MemoryTotal) && num(stats, Job.MemoryTotal) > 0 ? 'active' : 'setup';
    case JobType.Completed:
      return 'completed';
    case JobType.Failed:
      return 'failed';
    case JobType.Cancelled:
      return 'cancelled';
    default:
      return 'none';
  }
}

/** A MigrationStatus from libvirt's job statistics (active or completed). */
export function toMigrationStatus(stats: JobStats, opts: { postCopy: boolean }): MigrationStatus {
  const pageSize = num(stats, Job.MemoryPageSize) || DEFAULT_PAGE_SIZE;
  const status: MigrationStatus = {
    state: jobState(stats, opts.postCopy),
    memoryTotalBytes: num(stats, Job.MemoryTotal),
    memoryTransferredBytes: num(stats, Job.MemoryProcessed),
    memoryRemainingBytes: num(stats, Job.MemoryRemaining),
    diskTotalBytes: num(stats, Job.DiskTotal),
    diskTransferredBytes: num(stats, Job.DiskProcessed),
    diskRemainingBytes: num(stats, Job.DiskRemaining),
    dirtyRateBytesPerSecond: num(stats, Job.MemoryDirtyRate) * pageSize,
    iteration: num(stats, Job.MemoryIteration),
  };
  if (stats.params.has(Job.Downtime)) status.downtimeMs = num(stats, Job.Downtime);
  if (stats.params.has(Job.TimeElapsed)) status.totalTimeMs = num(stats, Job.TimeElapsed);
  const error = jobErrorMessage(stats);
  if (error && (status.state === 'failed' || status.state === 'cancelled')) status.error = error;
  return status;
}

/**
 * vmove's VmState for a libvirt domain state and reason. A target waiting for (or receiving)
 * a migration is paused for "migration"; a source whose migration completed is shut off as
 * "migrated" (libvirt keeps its definition); a source in post-copy has handed its state over.
 */
export function vmStateOf(state: number, reason: number): VmState {
  switch (state) {
    case DomainState.Running:
    case DomainState.Blocked:
    case DomainState.Shutdown:
      return 'Running';
    case DomainState.Paused:
      if (reason === PausedReason.Migration) return 'Incoming';
      if (reason === PausedReason.Postcopy) return 'Migrated';
      if (reason === PausedReason.PostcopyFailed) return 'Crashed';
      return 'Paused';
    case DomainState.PmSuspended:
      return 'Paused';
    case DomainState.Shutoff:
      if (reason === ShutoffReason.Migrated) return 'Migrated';
      if (reason === ShutoffReason.Crashed || reason === ShutoffReason.Failed) return 'Crashed';
      return 'Stopped';
    case DomainState.Crashed:
      return 'Crashed';
    default:
      return 'Stopped';
  }
}

/** The source is in post-copy: it is paused with its state handed over, pages still flowing. */
export const inPostCopy = (state: number, reason: number): boolean =>
  (state === DomainState.Paused && reason === PausedReason.Postcopy) || (state === DomainState.Running && reason === RunningReason.Postcopy);
