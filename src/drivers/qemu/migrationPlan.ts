// Pure translations between vmove's migration vocabulary and QEMU's: tuning → capabilities and
// parameters, query-migrate + query-block-jobs → MigrationStatus.
import { DEFAULT_AUTO_CONVERGE_STEP_PERCENT, type MigrationState, type MigrationStatus, type MigrationTuning } from '../../protocol/migration';

const MiB = 1024 * 1024;
/** What QEMU takes as "no limit" (it has no explicit unlimited value for max-bandwidth). */
export const UNLIMITED_BANDWIDTH = Number.MAX_SAFE_INTEGER;
/** Ceiling of the throttle while auto-converge is armed but not asked for (QEMU's minimum). */
const ARMED_THROTTLE_MAX = 1;

/** Capabilities fixed when a migration starts (QEMU refuses to change them during one). */
export interface ArmedFeatures {
  postCopy: boolean;
  autoConverge: boolean;
  multifdChannels: number;
}

export function capabilityList(f: ArmedFeatures): { capability: string; state: boolean }[] {
  return [
    { capability: 'postcopy-ram', state: f.postCopy },
    { capability: 'auto-converge', state: f.autoConverge },
    { capability: 'multifd', state: f.multifdChannels > 0 },
    { capability: 'events', state: true },
  ];
}

/**
 * Parameters for a tuning. Auto-converge, once armed, throttles only up to 1 % until the tuning
 * asks for it; then it starts at its step (20 % unless the tuning says) and climbs by the step
 * at most every other pass while the guest still dirties too fast, up to 99 %. (QEMU's default step, 10 %, took 16 passes to full strength:
 * on a 100 MiB/s link a 1 GiB guest rewriting 256 MiB converged after 60 s or not at all; with
 * 20 % steps, after 40 s, twice in two runs.)
 */
export function migrationParameters(t: MigrationTuning, armed: ArmedFeatures): Record<string, unknown> {
  const params: Record<string, unknown> = {
    'max-bandwidth': t.bandwidthMiBps > 0 ? Math.round(t.bandwidthMiBps * MiB) : UNLIMITED_BANDWIDTH,
    'downtime-limit': Math.max(1, Math.min(2_000_000, Math.round(t.maxDowntimeMs))),
  };
  if (armed.autoConverge) {
    const step = t.autoConvergeStepPercent ?? DEFAULT_AUTO_CONVERGE_STEP_PERCENT;
    Object.assign(
      params,
      t.autoConverge
        ? { 'cpu-throttle-initial': step, 'cpu-throttle-increment': step, 'max-cpu-throttle': 99 }
        : { 'cpu-throttle-initial': ARMED_THROTTLE_MAX, 'cpu-throttle-increment': 1, 'max-cpu-throttle': ARMED_THROTTLE_MAX },
    );
  }
  if (armed.multifdChannels > 0) params['multifd-channels'] = armed.multifdChannels;
  return params;
}

/** The subset of query-migrate's answer vmove reads. */
export interface QueryMigrate {
  status?: string;
  ram?: {
    transferred?: number;
    remaining?: number;
    total?: number;
    'dirty-pages-rate'?: number;
    'page-size'?: number;
    'dirty-sync-count'?: number;
  };
  'total-time'?: number;
  downtime?: number;
  'error-desc'?: string;
}

export interface BlockJob {
  device: string;
  type: string;
  len: number;
  offset: number;
  ready: boolean;
  status: string;
  /** Why the job failed, once it has (QEMU ≥ 6.0; kept until the job is dismissed). */
  error?: string;
}

export function migrationState(status: string | undefined): MigrationState {
  switch (status) {
    case undefined:
    case 'none':
      return 'none';
    case 'setup':
      return 'setup';
    case 'completed':
      return 'completed';
    case 'failed':
      return 'failed';
    case 'cancelled':
      return 'cancelled';
    case 'postcopy-active':
    case 'postcopy-paused':
    case 'postcopy-recover':
      return 'postcopy';
    default:
      // active, cancelling, pre-switchover, device, wait-unplug: still moving
      return 'active';
  }
}

/** Disk bytes of the mirror jobs, kept after the jobs end (QEMU forgets them). */
export interface DiskProgress {
  totalBytes: number;
  transferredBytes: number;
}

export function diskProgress(jobs: BlockJob[]): DiskProgress {
  const mirrors = jobs.filter((j) => j.type === 'mirror');
  return {
    totalBytes: mirrors.reduce((s, j) => s + j.len, 0),
    transferredBytes: mirrors.reduce((s, j) => s + Math.min(j.offset, j.len), 0),
  };
}

export function toMigrationStatus(q: QueryMigrate, disk: DiskProgress): MigrationStatus {
  const ram = q.ram ?? {};
  const state = migrationState(q.status);
  const status: MigrationStatus = {
    state,
    memoryTotalBytes: ram.total ?? 0,
    memoryTransferredBytes: ram.transferred ?? 0,
    memoryRemainingBytes: state === 'completed' ? 0 : (ram.remaining ?? 0),
    diskTotalBytes: disk.totalBytes,
    diskTransferredBytes: disk.transferredBytes,
    diskRemainingBytes: Math.max(0, disk.totalBytes - disk.transferredBytes),
    dirtyRateBytesPerSecond: Math.round((ram['dirty-pages-rate'] ?? 0) * (ram['page-size'] ?? 4096)),
    iteration: ram['dirty-sync-count'] ?? 0,
  };
  if (q.downtime !== undefined) status.downtimeMs = q.downtime;
  if (q['total-time'] !== undefined) status.totalTimeMs = q['total-time'];
  if (q.status === 'postcopy-paused') {
    status.error = 'post-copy paused: the migration stream broke while the target ran';
    status.errorTransient = true;
  } else if (state === 'failed') {
    status.error = q['error-desc'] ?? 'migration failed';
    status.errorTransient = true;
  }
  return status;
}
