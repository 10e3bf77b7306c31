// The setup every move machine is made with: its types, and each guard and action by name, so a
// machine's states only say which apply where. The one thing the actions need from a machine is
// what its rollback undoes (`undo`). Pure.
import { assertEvent, assign, setup } from 'xstate';
import type { MovePhase } from '../api/types';
import { isSameHost, mayRetryStepInPlace, nextAttempt, outcomeOfFailure, withLost } from './attempts';
import { hasRungAbove, NOTHING_SEEN, rungAt } from './ladder';
import { afterFailedStep, afterLostHost, planRollback } from './rollbackPlan';
import { stepName } from './steps';
import { climbOf, freshWatch, judgeOnRung, timeoutCause, timeoutReason, watchAfter } from './stepWatch';
import type { MoveContext, MoveEvent, MoveInput, RollbackCause, RollbackOutcome, Step } from './vocabulary';

/** What an attempt has reached when it enters a state (rollback undoes it). */
export type Reach = keyof MoveContext['reached'];

/** What a failure, a lost agent or a cancel says: the rollback's reason and the notes' words. */
export const failureText = (ev: MoveEvent): string =>
  ev.type === 'STEP_FAILED' || ev.type === 'AGENT_LOST' ? ev.message : ev.type === 'REJECTED' ? ev.message : ev.type;

type Decision = { outcome: RollbackOutcome; reason: string; cause: RollbackCause };

/** The event reports on the step `state` runs now; reports about any other step (stale, or an earlier attempt's) are not. */
const isStepOf = (state: MovePhase, context: MoveContext, event: MoveEvent): boolean => {
  assertEvent(event, ['STEP_SUCCEEDED', 'STEP_FAILED', 'PROGRESS']);
  return event.step === stepName(state, context);
};

/** Progress of the step `state` runs, while it is watched. */
const ownProgress = (state: MovePhase, context: MoveContext, event: MoveEvent) => {
  assertEvent(event, 'PROGRESS');
  return event.step === stepName(state, context) && !!context.watch ? event : undefined;
};

export function moveSetup(undo: (ctx: MoveContext) => Step[]) {
  /** Start a rollback: what to undo (the lost host's steps left out) and where to end. */
  const rollBack = (decide: (ctx: MoveContext, event: MoveEvent, state: MovePhase) => Decision) =>
    assign<MoveContext, MoveEvent, { state: MovePhase }, MoveEvent, never>(({ context, event }, params) => {
      const unreachable = event.type === 'AGENT_LOST' ? withLost(context, event.role) : context.unreachable;
      const ctx = { ...context, unreachable };
      const { outcome, reason, cause } = decide(ctx, event, params.state);
      return {
        unreachable,
        stepTry: 0,
        failure: outcome === 'Cancelled' ? context.failure : reason,
        rollback: { ...planRollback(ctx, undo, outcome, reason), cause },
      };
    });

  return setup({
    types: {
      context: {} as MoveContext,
      events: {} as MoveEvent,
      input: {} as MoveInput,
    },
    actions: {
      /** A line for status.history and a Kubernetes Event; the controller records it. */
      note: (_, _params: { message: string; warning?: boolean }) => undefined,
      /** START says whether the source's agent answers (a rebuild may start from a fenced host). */
      recordSourceReachability: assign(({ context, event }) => {
        assertEvent(event, 'START');
        return { unreachable: { ...context.unreachable, source: event.sourceReachable === false } };
      }),
      /** What the source showed of the guest as the attempt starts: the target must be no worse. */
      recordSourceGuest: assign(({ event }) => {
        assertEvent(event, 'START');
        return { sourceGuest: event.sourceGuest };
      }),
      placeOnTarget: assign(({ event }) => {
        assertEvent(event, 'PLACED');
        return { targetNode: event.targetNode };
      }),
      // A rebuild of a fenced host's VM that finds no host leaves the VM nowhere: say so. (Before
      // the move starts no host is known lost yet.)
      recordRejection: assign(({ context, event }) => ({
        failure: context.unreachable.source ? `${failureText(event)}; the source host ${context.sourceNode} is unreachable, so the VM runs nowhere` : failureText(event),
      })),
      recordCancel: assign({ cancelRequested: true }),
      /** Once the VM ran on the target, a cancel is recorded and the move completes. */
      ignoreCancel: assign({ cancelRequested: true, cancelIgnored: true }),
      /** A new step is in flight: watch it afresh; what entering the state reaches is remembered for rollback. */
      enterStep: assign(({ context, event }, params: { reaches?: Reach }) => ({
        watch: freshWatch(event.at),
        stepTry: 0,
        reached: params.reaches ? { ...context.reached, [params.reaches]: true } : context.reached,
      })),
      /** What a succeeded step tells the next ones: where the target listens, the guest's last heartbeat. */
      keepStepAnswer: assign(({ context, event }) => {
        assertEvent(event, 'STEP_SUCCEEDED');
        return {
          endpoint: event.endpoint ? event.endpoint : context.endpoint,
          guestHeartbeat: event.guestHeartbeat !== undefined ? event.guestHeartbeat : context.guestHeartbeat,
          downtimeMs: event.downtimeMs !== undefined ? event.downtimeMs : context.downtimeMs,
        };
      }),
      watchProgress: assign(({ context, event }, params: { converge: boolean }) => {
        assertEvent(event, 'PROGRESS');
        return context.watch ? { watch: watchAfter(context, event, params.converge) } : {};
      }),
      /** Pre-copy stalled: a rung up the ladder, and the judge starts counting afresh on it. */
      climbLadder: assign(({ context, event }) => {
        assertEvent(event, 'PROGRESS');
        const { rung, watch, throttleStepPercent } = climbOf(context, event);
        return { rung, throttleStepPercent, watch: { ...watch, stalledPasses: 0, bestRemainingBytes: NOTHING_SEEN } };
      }),
      rollBackAfterStepFailure: rollBack((ctx, ev, state) => {
        assertEvent(ev, 'STEP_FAILED');
        return { outcome: outcomeOfFailure(ctx, ev.transient), reason: `${state}: ${failureText(ev)}`, cause: 'StepFailed' };
      }),
      rollBackAfterTimeout: rollBack((ctx, ev, state) => ({ outcome: 'Failed', reason: `${state}: ${timeoutReason(ctx, ctx.watch!, ev.at)}`, cause: timeoutCause(ctx, ctx.watch!, ev.at) })),
      rollBackNotConverging: rollBack((ctx) => ({ outcome: 'Failed', reason: `did not converge on the last rung (${rungAt(ctx.policy, ctx.rung).name})`, cause: 'NotConverged' })),
      /** Losing the target's agent before the point of no return may pass: the move may try again. */
      rollBackAfterLostAgent: rollBack((ctx, ev, state) => {
        assertEvent(ev, 'AGENT_LOST');
        return {
          outcome: ev.role === 'target' && !isSameHost(ctx) ? outcomeOfFailure(ctx, true) : 'Failed',
          reason: `${ev.role} host lost during ${state}: ${failureText(ev)}`,
          cause: 'HostLost',
        };
      }),
      rollBackOnCancel: rollBack((_ctx, _ev, state) => ({ outcome: 'Cancelled', reason: `cancelled during ${state}`, cause: 'Cancelled' })),
      /** The host that runs the VM now is lost with it: the move fails, the VM is Lost there. */
      loseVmWithHost: assign(({ context, event }, params: { state: MovePhase }) => {
        assertEvent(event, 'AGENT_LOST');
        return {
          unreachable: withLost(context, event.role),
          failure: `${isSameHost(context) ? 'host' : 'target host'} ${context.targetNode} lost during ${params.state}: ${failureText(event)}; the VM is Lost there until its host returns or is evacuated`,
        };
      }),
      loseSource: assign(({ context }) => ({ unreachable: { ...context.unreachable, source: true } })),
      retryStepInPlace: assign(({ context }) => ({ stepTry: context.stepTry + 1 })),
      nextRollbackStep: assign(({ context }) => ({
        rollback: context.rollback ? { ...context.rollback, index: context.rollback.index + 1 } : context.rollback,
        stepTry: 0,
      })),
      /** The rollback step failed for good: recorded, and the VM kept from running twice. */
      giveUpRollbackStep: assign(({ context, event }) => {
        const rollback = afterFailedStep(context, `failed (${failureText(event)})`);
        return rollback ? { rollback } : {};
      }),
      dropLostHostSteps: assign(({ context, event }) => {
        assertEvent(event, 'AGENT_LOST');
        return afterLostHost(context, event.role) ?? {};
      }),
      /** Already undoing; a cancel only stops a retry that would follow. */
      cancelRetry: assign(({ context }) => ({
        cancelRequested: true,
        rollback: context.rollback && context.rollback.outcome === 'Retry' ? { ...context.rollback, outcome: 'Cancelled' as const } : context.rollback,
      })),
      startNextAttempt: assign(({ context, event }) => nextAttempt(context, event.at)),
    },
    guards: {
      /** The event reports on the step the given state runs now (stale reports are ignored). */
      isCurrentStep: ({ context, event }, params: { state: MovePhase }) => isStepOf(params.state, context, event),
      mayStart: ({ context, event }) => !context.notBefore || Date.parse(event.at) >= Date.parse(context.notBefore),
      isRetry: ({ context }) => context.rollback?.outcome === 'Retry',
      isCancel: ({ context }) => context.rollback?.outcome === 'Cancelled',
      rollbackDone: ({ context }) => !!context.rollback && context.rollback.index >= context.rollback.steps.length,
      vmStopped: ({ context }) => !context.vmRunning,
      sharedStorage: ({ context }) => context.variant === 'SharedStorage' || context.variant === 'FromSharedDisk',
      sameHost: ({ context }) => isSameHost(context),
      hotplugVariant: ({ context }) => context.variant === 'Hotplug',
      hotplugOrStopped: ({ context }) => context.variant === 'Hotplug' || !context.vmRunning,
      sourceUnreachable: ({ context }) => context.unreachable.source,
      mayRetryStep: ({ context, event }) => {
        assertEvent(event, 'STEP_FAILED');
        return event.transient && mayRetryStepInPlace(context);
      },
      /** Progress of the state's step shows no progress for too long, or too slow a step overall. */
      timedOut: ({ context, event }, params: { state: MovePhase }) => {
        const p = ownProgress(params.state, context, event);
        return !!p && !!timeoutReason(context, context.watch!, p.at);
      },
      /** Pre-copy no longer shrinks what remains, and the ladder has no rung left. */
      stuckOnTopRung: ({ context, event }, params: { state: MovePhase }) => {
        const p = ownProgress(params.state, context, event);
        return !!p && judgeOnRung(context, p).stuck && !hasRungAbove(context.policy, context.rung);
      },
      /** Pre-copy no longer shrinks what remains: climb a rung. */
      notConverging: ({ context, event }, params: { state: MovePhase }) => {
        const p = ownProgress(params.state, context, event);
        return !!p && judgeOnRung(context, p).stuck;
      },
      /** The lost host is the one the VM runs on now: the target, or the one host of a resize in place. */
      lostHostRunsVm: ({ context, event }) => {
        assertEvent(event, 'AGENT_LOST');
        return event.role === 'target' || isSameHost(context);
      },
    },
  });
}

export type MoveSetup = ReturnType<typeof moveSetup>;
/** A state of a move machine, type-checked against the setup's guards and actions. */
export type MoveStateConfig = Parameters<MoveSetup['createStateConfig']>[0];

/** A line for the history, worded from the context after the actions before it (and the event); an empty one records nothing. */
export const note = (message: string | ((ctx: MoveContext, ev: MoveEvent) => string), warning = false) =>
  ({
    type: 'note',
    params: ({ context, event }: { context: MoveContext; event: MoveEvent }) => ({
      message: typeof message === 'string' ? message : message(context, event),
      warning,
    }),
  }) as const;
