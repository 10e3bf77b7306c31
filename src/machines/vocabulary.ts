// The words every move machine shares: what a machine is started with, what it remembers,
// the events the controller feeds it, and the agent steps its states ask for.
// Pure types: no Kubernetes, no drivers, no I/O.
import type { OperationRequest } from '../protocol/operations';
import type { IncomingEndpoint } from '../protocol/migration';
import type { MovePhase, MoveType, MoveVariant } from '../api/types';

export type Role = 'source' | 'target';

export interface Resources {
  cpu: number;
  memoryBytes: number;
}

/** MoveRequest.spec.policy with the cluster defaults filled in. */
export interface ResolvedPolicy {
  maxDowntimeMs: number;
  /** 0 = unlimited. */
  bandwidthMiBps: number;
  completionTimeoutPerGiB: number;
  progressTimeoutSeconds: number;
  allowAutoConverge: boolean;
  allowPostCopy: boolean;
  maxAttempts: number;
  /** Migration streams in plaintext (spec.policy.insecureMigration or the controller's flag); absent in moves recorded before it existed. */
  insecureMigration?: boolean;
}

/** What the controller knows when a move starts; fixed for the move's life. */
export interface MoveInput {
  moveType: MoveType;
  variant: MoveVariant;
  /** Why this type and variant were chosen (shown in status.reason). */
  reason: string;
  sourceNode: string;
  /** The VM runs (and must run again after the move). */
  vmRunning: boolean;
  before: Resources;
  after: Resources;
  policy: ResolvedPolicy;
  /** Memory + disk bytes the move transfers; scales the completion timeout. */
  bytesToMove: number;
  /** The VM has disks on shared storage, which a copy on the target writes to as well (absent: assume so). */
  sharedDisks?: boolean;
  /** Attempt number to start at (1 for a new move). */
  attempt?: number;
}

/** One agent operation a state asks for. `name` is unique within an attempt (it keys the opId). */
export type StepRequest = OperationRequest extends infer R ? (R extends unknown ? Omit<R, 'vm'> : never) : never;

export interface Step {
  name: string;
  role: Role;
  /** Which resources the VM spec sent with the step carries. */
  resources: 'before' | 'after';
  request: StepRequest;
}

/** Stands for the source agent's endpoint in a step; the controller puts the real one in. */
export const SOURCE_AGENT = '@source-agent';

export type RollbackOutcome = 'Failed' | 'Cancelled' | 'Retry';

/** Why a rollback started, as a closed set (the metrics' `reason` label; `reason` is the sentence). */
export type RollbackCause = 'Cancelled' | 'ProgressTimeout' | 'CompletionTimeout' | 'NotConverged' | 'StepFailed' | 'HostLost';

export interface RollbackPlan {
  steps: Step[];
  index: number;
  outcome: RollbackOutcome;
  reason: string;
  /** Absent in plans persisted before it existed. */
  cause?: RollbackCause;
  /** Steps that failed for good or were left out (their host lost, or to keep the VM from running twice). */
  incomplete?: Array<{ step: Step; why: string }>;
}

/** Progress bookkeeping of the step in flight: feeds the timeouts and the convergence judge. */
export interface StepWatch {
  startedAt: string;
  lastProgressAt: string;
  processedBytes: number;
  bestRemainingBytes: number;
  lastIteration: number;
  stalledPasses: number;
  /** The least a pre-copy pass after the first sent, in bytes: what stays dirty after each pass (absent until measured). */
  dirtyPerPassBytes?: number;
  /** Highest throughput seen on this step, in bytes/s (absent until a window was measured). */
  peakBytesPerSecond?: number;
  /** Start of the current throughput window: when, and the bytes processed by then. */
  windowAt?: string;
  windowBytes?: number;
}

/**
 * What the source showed of the guest when the attempt started (the VM's GuestReady as its host
 * last reported it): the target must be no worse. `Ready`: it heartbeated; `NotReady`: still
 * booting (or its heartbeat stopped); `Unknown`: the source cannot see its guest.
 */
export interface GuestBaseline {
  state: 'Ready' | 'NotReady' | 'Unknown';
  /** GuestReady's reason (Heartbeat, Booting, HeartbeatStopped, NotObservable, …). */
  reason: string;
  /** The last heartbeat the source's host reported, and when. */
  heartbeat?: number;
  heartbeatTime?: string;
  /** Seconds the move waited in Pending for the guest to finish booting (absent: it did not wait). */
  waitedSeconds?: number;
}

export interface MoveContext extends MoveInput {
  attempt: number;
  targetNode?: string;
  /** Where the source sends the VM (answer of the target's prepareIncoming). */
  endpoint?: IncomingEndpoint;
  /** The guest's last heartbeat on the source when the live migration completed (this attempt). */
  guestHeartbeat?: number;
  /** The live migration's final pause as the hypervisor reported it (this attempt). */
  downtimeMs?: number;
  /** What the source showed of the guest when this attempt started (live moves of a running VM). */
  sourceGuest?: GuestBaseline;
  /** Position on the convergence ladder (live moves). */
  rung: number;
  /** Auto-converge's throttle step, chosen from what was measured when the ladder climbed to it (live moves). */
  throttleStepPercent?: number;
  watch?: StepWatch;
  rollback?: RollbackPlan;
  /** Retries of the current step in place (rollback and clean-up steps). */
  stepTry: number;
  /** A retried move does not start before this time. */
  notBefore?: string;
  /** Why the move failed or was rolled back. */
  failure?: string;
  cancelRequested: boolean;
  /** Set when a cancel arrived once the VM already ran on the target. */
  cancelIgnored: boolean;
  /** What this attempt has touched (conservatively: entered), so rollback undoes only that. */
  reached: {
    sourceStopped: boolean;
    targetPrepared: boolean;
    migrationStarted: boolean;
    targetStarted: boolean;
  };
  /** Hosts whose agent is gone; their steps are skipped. */
  unreachable: { source: boolean; target: boolean };
}

interface Timed {
  /** When the controller observed what the event says (ISO 8601); the machines' only clock. */
  at: string;
}

export type MoveEvent = Timed &
  (
    | { type: 'START'; sourceReachable?: boolean; sourceGuest?: GuestBaseline }
    | { type: 'PLACED'; targetNode: string }
    | { type: 'REJECTED'; message: string }
    | { type: 'STEP_SUCCEEDED'; step: string; endpoint?: IncomingEndpoint; guestHeartbeat?: number; downtimeMs?: number; message?: string }
    | { type: 'STEP_FAILED'; step: string; message: string; transient: boolean }
    | { type: 'PROGRESS'; step: string; processedBytes: number; remainingBytes: number; iteration: number }
    | { type: 'AGENT_LOST'; role: Role; message: string }
    | { type: 'CANCEL' }
  );

export const TERMINAL: readonly MovePhase[] = ['Succeeded', 'Failed', 'Cancelled'];
export const isTerminal = (phase: MovePhase): boolean => TERMINAL.includes(phase);

/**
 * Phases after a move's bytes are across (the guest runs on the target; it is checked, then the
 * source cleaned up). The move still holds the target's capacity, but no transfer stream: the
 * concurrency limits count moves whose bytes may still cross, so the next move streams while this
 * one verifies. A rollback from here counts again.
 */
export const PAST_TRANSFER: readonly MovePhase[] = ['Verifying', 'CleaningUp'];
export const bytesAcross = (phase: MovePhase | undefined): boolean => !!phase && PAST_TRANSFER.includes(phase);

/**
 * How long Verifying waits for the guest to make progress (it answers as soon as it does). A guest
 * that just booted needs time to come up (tens of seconds under TCG or for a full OS); one that
 * arrived by live migration was already running.
 */
export const VERIFY_WINDOW_MS = { afterLiveMigration: 15_000, afterBoot: 120_000 } as const;

/**
 * How long a live move of a VM whose guest is still booting waits in Pending for it to come up,
 * counted from when the guest started booting (its GuestReady turned False); then it goes ahead.
 */
export const GUEST_BOOT_WAIT_MS = VERIFY_WINDOW_MS.afterBoot;

/** States from which the VM already runs on the target: a cancel can no longer undo the move. */
export const COMMITTED_TAG = 'committed';
