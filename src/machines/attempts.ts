// A move's attempts: what the first starts from, which hosts an attempt can still reach, when a
// failure allows another attempt, and what the next one starts from and when. Pure.
import { traitsOf } from './traits';
import type { MoveContext, MoveInput, Role, RollbackOutcome } from './vocabulary';

/** Tries of one rollback or clean-up step in place before it counts as failed for good. */
const MAX_STEP_TRIES = 5;
const BACKOFF_BASE_MS = 5_000;
const BACKOFF_MAX_MS = 300_000;

const NOTHING_REACHED: MoveContext['reached'] = { sourceStopped: false, targetPrepared: false, migrationStarted: false, targetStarted: false };
const ALL_REACHABLE: MoveContext['unreachable'] = { source: false, target: false };

export function initialContext(input: MoveInput): MoveContext {
  return {
    ...input,
    attempt: input.attempt ?? 1,
    rung: 0,
    stepTry: 0,
    cancelRequested: false,
    cancelIgnored: false,
    reached: { ...NOTHING_REACHED },
    unreachable: { ...ALL_REACHABLE },
  };
}

/** Source and target are one host (resize in place): losing its agent loses both roles. */
export const isSameHost = (ctx: MoveContext): boolean => ctx.targetNode === ctx.sourceNode;

/** `unreachable` once the agent of the host in `role` is lost. */
export const withLost = (ctx: MoveContext, role: Role): MoveContext['unreachable'] =>
  isSameHost(ctx) ? { source: true, target: true } : { ...ctx.unreachable, [role]: true };

/** A rollback or clean-up step that failed transiently may run again in place. */
export const mayRetryStepInPlace = (ctx: MoveContext): boolean => ctx.stepTry + 1 < MAX_STEP_TRIES;

/**
 * A retry starts from the VM as it was, on a source that can act: not after the source's agent
 * was lost (its part of the rollback is skipped) — except for a move that starts from a fenced
 * source (a rebuild), which the controller starts again only once that host is fenced.
 */
export const mayRetryFrom = (ctx: MoveContext): boolean => !ctx.unreachable.source || traitsOf(ctx.moveType).startsFromFencedSource;

/** Where a rollback after this failure ends: another attempt if the failure may pass and the move allows one. */
export const outcomeOfFailure = (ctx: MoveContext, transient: boolean): RollbackOutcome =>
  transient && ctx.attempt < ctx.policy.maxAttempts && !ctx.cancelRequested && mayRetryFrom(ctx) ? 'Retry' : 'Failed';

/** Exponential backoff before attempt `attempt + 1`. */
const retryDelayMs = (attempt: number): number => Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));

export const nextAttemptAt = (ctx: MoveContext, at: string): string => new Date(Date.parse(at) + retryDelayMs(ctx.attempt)).toISOString();

/** What the next attempt starts from: the move's input, nothing placed, reached or lost yet. */
export const nextAttempt = (ctx: MoveContext, at: string): Partial<MoveContext> => ({
  attempt: ctx.attempt + 1,
  notBefore: nextAttemptAt(ctx, at),
  targetNode: undefined,
  endpoint: undefined,
  guestHeartbeat: undefined,
  downtimeMs: undefined,
  sourceGuest: undefined,
  rung: 0,
  throttleStepPercent: undefined,
  watch: undefined,
  rollback: undefined,
  stepTry: 0,
  reached: { ...NOTHING_REACHED },
  unreachable: { ...ALL_REACHABLE },
});
