// The operations the controller asks of a host's agent, and what the agent answers about them.
//
// Every operation is idempotent: the opId (MoveRequest UID + attempt + step, or
// VirtualMachine UID + action) names it; a second PUT with the same opId answers the first
// one's status instead of acting again. Only `migrate` accepts a changed body for the same
// opId, and only to change its tuning (the convergence ladder); any other change is a 409.
// A finished operation keeps its result: to try again after a failure, use a new opId.
import type { IncomingEndpoint, MigrationStatus, MigrationTuning } from './migration';
import type { VmSpec } from './vm';

interface OpBase<K extends string> {
  kind: K;
  vm: VmSpec;
}

export type OperationRequest =
  /** Create disks (keep existing ones), define, and start when `start`. Idempotent VM creation. */
  | (OpBase<'ensureVm'> & { disks: 'keep' | 'fresh'; start: boolean })
  | OpBase<'startVm'>
  | OpBase<'stopVm'>
  /**
   * Undefine; Local disks are deleted when `deleteLocalDisks`, shared ones too when `deleteSharedDisks` (deleting the VM itself).
   * `discard`: the copy is thrown away — end it at once instead of asking its guest to power off first.
   */
  | (OpBase<'deleteVm'> & { deleteLocalDisks: boolean; deleteSharedDisks?: boolean; discard?: boolean })
  /**
   * `tuning`: the migration's first settings; some (post-copy, auto-converge) must be armed on the target before the stream starts.
   * `insecureMigration`: accept the stream (and NBD) in plaintext; without it the target waits for TLS only.
   */
  | (OpBase<'prepareIncoming'> & { blockMigration: boolean; tuning?: MigrationTuning; insecureMigration?: boolean })
  | (OpBase<'migrate'> & { to: IncomingEndpoint; tuning: MigrationTuning; blockMigration: boolean })
  | OpBase<'abortMigration'>
  | OpBase<'completeIncoming'>
  | OpBase<'resumeSource'>
  /** Pull every Local disk of the VM from another agent (cold move with disk copy). */
  | (OpBase<'copyDisks'> & { from: { endpoint: string } })
  | (OpBase<'hotplug'> & { cpu: number; memoryBytes: number })
  /**
   * Check the VM runs here and its guest makes progress (heartbeat advances) within `windowMs`;
   * with `heartbeatAbove` (a live move: the guest's last heartbeat on the source), the guest must
   * go on from there — a lower heartbeat means it restarted. With `acceptConsole` (a guest that had
   * not heartbeated on the source: it was booting), console output that grows counts as progress too.
   */
  | (OpBase<'verify'> & { windowMs: number; expectRunning: boolean; heartbeatAbove?: number; acceptConsole?: boolean });

export type OperationKind = OperationRequest['kind'];

export type OperationState = 'Running' | 'Succeeded' | 'Failed';

export interface OperationError {
  message: string;
  /** True when trying again may succeed (timeouts, connection resets, busy host). */
  transient: boolean;
}

export interface CopyProgress {
  totalBytes: number;
  copiedBytes: number;
}

export interface OperationStatus {
  opId: string;
  kind: OperationKind;
  state: OperationState;
  startedAt: string;
  finishedAt?: string;
  migration?: MigrationStatus;
  copy?: CopyProgress;
  /** prepareIncoming answers where to send the VM. */
  endpoint?: IncomingEndpoint;
  /** migrate: the guest's last heartbeat here when the migration completed. */
  guestHeartbeat?: number;
  error?: OperationError;
  /** A short human sentence (shown in MoveRequest history). */
  message?: string;
}
