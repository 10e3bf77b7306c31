// What the four move machines share: the setup (types, guards, actions), the states that mean
// the same thing everywhere (Pending, Scheduling, RollingBack, the terminal states), and the
// rules every acting state follows (step results, progress, timeouts, lost agents, cancel).
// Each machine file lists its own states with these pieces, top to bottom, as its story.
import { and, setup } from 'xstate';
import type { MovePhase } from '../api/types';
import { climbFrom, hasRungAbove, judgePass, measureThroughput, NOTHING_SEEN, patienceOf, rungAt } from './ladder';
import type { MoveContext, MoveEvent, MoveInput, RollbackOutcome, RollbackPlan, Role, Step, StepWatch } from './vocabulary';
import { COMMITTED_TAG } from './vocabulary';

/** Per-machine knowledge the shared states need. */
export interface MachineSpec {
  /** The agent step a state runs (undefined: the state runs none). */
  step(state: MovePhase, ctx: MoveContext): Step | undefined;
  /** Steps that undo what this attempt reached, in order. */
  rollback(ctx: MoveContext): Step[];
}

const MAX_STEP_TRIES = 5;
const BACKOFF_BASE_MS = 5_000;
const BACKOFF_MAX_MS = 300_000;

export const ms = (iso: string): number => Date.parse(iso);
export const addMs = (iso: string, delta: number): string => new Date(ms(iso) + delta).toISOString();

/** Exponential backoff before attempt `attempt + 1`. */
export const retryDelayMs = (attempt: number): number => Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));

export function initialContext(input: MoveInput): MoveContext {
  return {
    ...input,
    attempt: input.attempt ?? 1,
    rung: 0,
    stepTry: 0,
    cancelRequested: false,
    cancelIgnored: false,
    reached: { sourceStopped: false, targetPrepared: false, migrationStarted: false, targetStarted: false },
    unreachable: { source: false, target: false },
  };
}

/**
 * The key of the step a state runs, as used in operation ids: `<attempt>.<step>`, unique for the
 * whole move, so a late result of an earlier attempt's step can never pass for the current one's.
 */
export function stepName(state: MovePhase, ctx: MoveContext): string {
  // Named after the rollback step, not its index: dropping a lost host's steps shifts the indices.
  if (state === 'RollingBack') return `${ctx.attempt}.rollback-${ctx.rollback?.steps[ctx.rollback.index]?.name ?? 'done'}-${ctx.stepTry}`;
  if (state === 'CleaningUp') return `${ctx.attempt}.cleanup-${ctx.stepTry}`;
  return `${ctx.attempt}.${state.replace(/[A-Z]/g, (c, i: number) => (i ? '-' : '') + c.toLowerCase())}`;
}

const freshWatch = (at: string): StepWatch => ({
  startedAt: at,
  lastProgressAt: at,
  processedBytes: 0,
  bestRemainingBytes: NOTHING_SEEN,
  lastIteration: 0,
  stalledPasses: 0,
});

const GiB = 1024 ** 3;

/** Why the step in flight must be given up on, if it must: no progress, or too slow overall. */
export function timeoutReason(ctx: MoveContext, watch: StepWatch, at: string): string | undefined {
  const quiet = (ms(at) - ms(watch.lastProgressAt)) / 1000;
  if (quiet > ctx.policy.progressTimeoutSeconds) {
    return `no progress for ${Math.round(quiet)} s (progressTimeoutSeconds ${ctx.policy.progressTimeoutSeconds})`;
  }
  const limit = Math.max(1, ctx.bytesToMove / GiB) * ctx.policy.completionTimeoutPerGiB;
  const elapsed = (ms(at) - ms(watch.startedAt)) / 1000;
  if (elapsed > limit) {
    return `not finished after ${Math.round(elapsed)} s (completion timeout ${Math.round(limit)} s for ${(ctx.bytesToMove / GiB).toFixed(2)} GiB)`;
  }
  return undefined;
}

function planRollback(ctx: MoveContext, spec: MachineSpec, outcome: RollbackOutcome, reason: string): RollbackPlan {
  const steps = spec.rollback(ctx).filter((s) => !ctx.unreachable[s.role]);
  return { steps, index: 0, outcome, reason };
}

/**
 * A retry starts from the VM as it was, on a source that can act: not after the source's agent
 * was lost (its part of the rollback is skipped) — except for a rebuild, which the controller
 * starts again only once that host is fenced.
 */
const mayRetryFrom = (ctx: MoveContext): boolean => !ctx.unreachable.source || ctx.moveType === 'Rebuild';

const outcomeOfFailure = (ctx: MoveContext, transient: boolean): RollbackOutcome =>
  transient && ctx.attempt < ctx.policy.maxAttempts && !ctx.cancelRequested && mayRetryFrom(ctx) ? 'Retry' : 'Failed';

/** A rollback that could not do all it planned leaves the VM in no known state: no retry from there. */
const noRetry = (plan: RollbackPlan): RollbackPlan => (plan.outcome === 'Retry' ? { ...plan, outcome: 'Failed' } : plan);

export const moveSetup = setup({
  types: {
    context: {} as MoveContext,
    events: {} as MoveEvent,
    input: {} as MoveInput,
  },
  actions: {
    /** A line for status.history and a Kubernetes Event; the controller records it. */
    note: (_, _params: { message: string; warning?: boolean }) => undefined,
  },
  guards: {
    /** The event reports on the step the given state runs now (stale reports are ignored). */
    isCurrentStep: ({ context, event }, params: { state: MovePhase }) =>
      'step' in event && event.step === stepName(params.state, context),
    mayStart: ({ context, event }) => !context.notBefore || ms(event.at) >= ms(context.notBefore),
    isRetry: ({ context }) => context.rollback?.outcome === 'Retry',
    isCancel: ({ context }) => context.rollback?.outcome === 'Cancelled',
    rollbackDone: ({ context }) => !!context.rollback && context.rollback.index >= context.rollback.steps.length,
    vmStopped: ({ context }) => !context.vmRunning,
    sharedStorage: ({ context }) => context.variant === 'SharedStorage' || context.variant === 'FromSharedDisk',
    sameHost: ({ context }) => context.targetNode === context.sourceNode,
    hotplugVariant: ({ context }) => context.variant === 'Hotplug',
    hotplugOrStopped: ({ context }) => context.variant === 'Hotplug' || !context.vmRunning,
    sourceUnreachable: ({ context }) => context.unreachable.source,
    mayRetryStep: ({ context, event }) => event.type === 'STEP_FAILED' && event.transient && context.stepTry + 1 < MAX_STEP_TRIES,
    /** Progress of the state's step shows no progress for too long, or too slow a step overall. */
    timedOut: ({ context, event }, params: { state: MovePhase }) =>
      isOwnProgress(params.state, context, event) && !!context.watch && !!timeoutReason(context, context.watch, event.at),
    /** Pre-copy no longer shrinks what remains, and the ladder has no rung left. */
    stuckOnTopRung: ({ context, event }, params: { state: MovePhase }) =>
      isOwnProgress(params.state, context, event) && !!context.watch && judgeOnRung(context, event).stuck && !hasRungAbove(context.policy, context.rung),
    /** Pre-copy no longer shrinks what remains: climb a rung. */
    notConverging: ({ context, event }, params: { state: MovePhase }) =>
      isOwnProgress(params.state, context, event) && !!context.watch && judgeOnRung(context, event).stuck,
    /** The lost host is the one the VM runs on now: the target, or the one host of a resize in place. */
    lostHostRunsVm: ({ context, event }) => event.type === 'AGENT_LOST' && (event.role === 'target' || isSameHost(context)),
  },
});

type Assign = ReturnType<typeof moveSetup.assign>;
const assign = moveSetup.assign;

const note = (message: string | ((ctx: MoveContext, ev: MoveEvent) => string), warning = false) =>
  ({
    type: 'note',
    params: ({ context, event }: { context: MoveContext; event: MoveEvent }) => ({
      message: typeof message === 'string' ? message : message(context, event),
      warning,
    }),
  }) as const;

/** Source and target are one host (resize in place): losing its agent loses both roles. */
const isSameHost = (ctx: MoveContext): boolean => ctx.targetNode === ctx.sourceNode;

/** `unreachable` once the agent of the host in `role` is lost. */
const withLost = (ctx: MoveContext, role: Role): MoveContext['unreachable'] =>
  isSameHost(ctx) ? { source: true, target: true } : { ...ctx.unreachable, [role]: true };

const failureText = (ev: MoveEvent): string =>
  ev.type === 'STEP_FAILED' || ev.type === 'AGENT_LOST' ? ev.message : ev.type === 'REJECTED' ? ev.message : ev.type;

/** Start a rollback: what to undo and where to end. */
const beginRollback = (spec: MachineSpec, decide: (ctx: MoveContext, ev: MoveEvent) => { outcome: RollbackOutcome; reason: string }): Assign =>
  assign(({ context, event }) => {
    const unreachable =
      event.type === 'AGENT_LOST' ? withLost(context, event.role) : context.unreachable;
    const ctx = { ...context, unreachable };
    const { outcome, reason } = decide(ctx, event);
    return {
      unreachable,
      stepTry: 0,
      failure: outcome === 'Cancelled' ? context.failure : reason,
      rollback: planRollback(ctx, spec, outcome, reason),
    };
  });

// ------------------------------------------------------------------ shared states

/** Waiting for the controller to let the move start: its VM is free and the limits allow it. */
export const pendingState = () =>
  moveSetup.createStateConfig({
    on: {
      START: {
        guard: 'mayStart',
        target: 'Scheduling',
        actions: assign(({ context, event }) => ({
          unreachable: { ...context.unreachable, source: event.type === 'START' && event.sourceReachable === false },
        })),
      },
      REJECTED: { target: 'Failed', actions: [assign(({ event }) => ({ failure: failureText(event) })), note((_, e) => failureText(e), true)] },
      CANCEL: { target: 'Cancelled', actions: [assign({ cancelRequested: true }), note('cancelled before the move started; nothing was touched')] },
    },
  });

/** Choosing (or confirming) the target host; the controller answers PLACED or REJECTED. */
export const schedulingState = (next: MovePhase) =>
  moveSetup.createStateConfig({
    on: {
      PLACED: {
        target: next,
        actions: [assign(({ event }) => ({ targetNode: event.type === 'PLACED' ? event.targetNode : undefined })), note((_, e) => `placed on ${e.type === 'PLACED' ? e.targetNode : '?'}`)],
      },
      REJECTED: {
        target: 'Failed',
        actions: [
          // A rebuild of a fenced host's VM that finds no host leaves the VM nowhere: say so.
          assign(({ context, event }) => ({
            failure: context.unreachable.source ? `${failureText(event)}; the source host ${context.sourceNode} is unreachable, so the VM runs nowhere` : failureText(event),
          })),
          note((ctx) => ctx.failure ?? 'rejected', true),
        ],
      },
      CANCEL: { target: 'Cancelled', actions: [assign({ cancelRequested: true }), note('cancelled before the move started; nothing was touched')] },
    },
  });

interface ActingOptions {
  state: MovePhase;
  next: MovePhase;
  /** Entering this state means this much has (possibly) been done; rollback undoes it. */
  reaches?: keyof MoveContext['reached'];
  /** Skip the state (go straight to `next`) when this guard holds. */
  skipWhen?: 'vmStopped' | 'sourceUnreachable' | 'sharedStorage' | 'sameHost' | 'hotplugVariant' | 'hotplugOrStopped';
  /** Climb the convergence ladder when pre-copy stalls (live migration). */
  converge?: boolean;
}

type ProgressEvent = Extract<MoveEvent, { type: 'PROGRESS' }>;

/** The ladder's judge of a pass, as patient as the current rung needs. */
const judgeOnRung = (context: MoveContext, event: ProgressEvent) => judgePass(context.watch!, event, patienceOf(rungAt(context.policy, context.rung)));

/** The step's watch after a progress sample: the progress clock, throughput, and (live) the ladder's judgement. */
const watchAfter = (context: MoveContext, event: ProgressEvent, converge: boolean): StepWatch => {
  const w = context.watch!;
  const judged = converge ? judgeOnRung(context, event).watch : w;
  const moved = event.processedBytes > w.processedBytes;
  return measureThroughput({ ...judged, processedBytes: Math.max(w.processedBytes, event.processedBytes), lastProgressAt: moved ? event.at : w.lastProgressAt }, event);
};

/** Where a stuck migration climbs to, judged with the sample that found it stuck. */
const climbOf = (context: MoveContext, event: ProgressEvent) => climbFrom(context.policy, context.rung, watchAfter(context, event, true));

/** Progress of the step this state runs; reports about any other step (stale, or an earlier attempt's) are ignored. */
const isOwnProgress = (state: MovePhase, context: MoveContext, event: MoveEvent): event is Extract<MoveEvent, { type: 'PROGRESS' }> =>
  event.type === 'PROGRESS' && event.step === stepName(state, context);

const progressTransitions = (spec: MachineSpec, o: ActingOptions) => [
  {
    guard: { type: 'timedOut', params: { state: o.state } } as const,
    target: 'RollingBack' as const,
    actions: [
      beginRollback(spec, (ctx, ev) => ({ outcome: 'Failed', reason: `${o.state}: ${timeoutReason(ctx, ctx.watch!, ev.at)}` })),
      note((ctx) => `rolling back: ${ctx.failure}`, true),
    ],
  },
  ...(o.converge
    ? [
        {
          guard: { type: 'stuckOnTopRung', params: { state: o.state } } as const,
          target: 'RollingBack' as const,
          actions: [
            beginRollback(spec, (ctx) => ({ outcome: 'Failed', reason: `did not converge on the last rung (${rungAt(ctx.policy, ctx.rung).name})` })),
            note((ctx) => `rolling back: ${ctx.failure}`, true),
          ],
        },
        {
          guard: { type: 'notConverging', params: { state: o.state } } as const,
          actions: [
            // The note first: it explains the climb from what was seen on the rung being left.
            note((ctx, ev) => {
              const c = climbOf(ctx, ev as ProgressEvent);
              const passedOver = c.skipped.length ? `; passed over ${c.skipped.map((r) => r.name).join(', ')}: ${c.why}` : '';
              return `not converging: convergence ladder up to rung ${c.rung} (${rungAt(ctx.policy, c.rung).name})${passedOver}`;
            }),
            assign(({ context, event }) => ({
              rung: climbOf(context, event as ProgressEvent).rung,
              watch: { ...watchAfter(context, event as ProgressEvent, true), stalledPasses: 0, bestRemainingBytes: NOTHING_SEEN },
            })),
          ],
        },
      ]
    : []),
  {
    guard: { type: 'isCurrentStep', params: { state: o.state } } as const,
    actions: assign(({ context, event }) => (event.type === 'PROGRESS' && context.watch ? { watch: watchAfter(context, event, !!o.converge) } : {})),
  },
];

/** A state before the point of no return: the VM still runs (or can run again) on the source. */
export const actingState = (spec: MachineSpec, o: ActingOptions) =>
  moveSetup.createStateConfig({
    entry: assign(({ context, event }) => ({
      watch: freshWatch(event.at),
      stepTry: 0,
      reached: o.reaches ? { ...context.reached, [o.reaches]: true } : context.reached,
    })),
    ...(o.skipWhen ? { always: { guard: o.skipWhen, target: o.next } } : {}),
    on: {
      STEP_SUCCEEDED: {
        guard: { type: 'isCurrentStep', params: { state: o.state } },
        target: o.next,
        actions: assign(({ context, event }) => ({
          endpoint: event.type === 'STEP_SUCCEEDED' && event.endpoint ? event.endpoint : context.endpoint,
          guestHeartbeat: event.type === 'STEP_SUCCEEDED' && event.guestHeartbeat !== undefined ? event.guestHeartbeat : context.guestHeartbeat,
        })),
      },
      STEP_FAILED: {
        guard: { type: 'isCurrentStep', params: { state: o.state } },
        target: 'RollingBack',
        actions: [
          beginRollback(spec, (ctx, ev) => ({
            outcome: outcomeOfFailure(ctx, ev.type === 'STEP_FAILED' && ev.transient),
            reason: `${o.state}: ${failureText(ev)}`,
          })),
          note((ctx) => `rolling back: ${ctx.failure}`, true),
        ],
      },
      PROGRESS: progressTransitions(spec, o),
      AGENT_LOST: {
        target: 'RollingBack',
        actions: [
          beginRollback(spec, (ctx, ev) => {
            const role = ev.type === 'AGENT_LOST' ? ev.role : 'target';
            return {
              outcome: role === 'target' && !isSameHost(ctx) ? outcomeOfFailure(ctx, true) : 'Failed',
              reason: `${role} host lost during ${o.state}: ${failureText(ev)}`,
            };
          }),
          note((ctx) => `rolling back: ${ctx.failure}`, true),
        ],
      },
      CANCEL: {
        target: 'RollingBack',
        actions: [
          assign({ cancelRequested: true }),
          beginRollback(spec, () => ({ outcome: 'Cancelled', reason: `cancelled during ${o.state}` })),
          note(`cancel requested during ${o.state}: rolling back`),
        ],
      },
    },
  });

const ignoreCancel = (state: MovePhase) => ({
  actions: [
    assign({ cancelRequested: true, cancelIgnored: true }),
    note(`cancel arrived during ${state}, after the VM started on the target: the move completes instead of disrupting the VM again`, true),
  ],
});

/** A state past the point of no return: the VM runs (or is starting) on the target. */
export const committedState = (spec: MachineSpec, o: ActingOptions) =>
  moveSetup.createStateConfig({
    tags: [COMMITTED_TAG],
    entry: assign(({ context, event }) => ({
      watch: freshWatch(event.at),
      stepTry: 0,
      reached: o.reaches ? { ...context.reached, [o.reaches]: true } : context.reached,
    })),
    ...(o.skipWhen ? { always: { guard: o.skipWhen, target: o.next } } : {}),
    on: {
      STEP_SUCCEEDED: { guard: { type: 'isCurrentStep', params: { state: o.state } }, target: o.next },
      STEP_FAILED: {
        guard: { type: 'isCurrentStep', params: { state: o.state } },
        target: 'RollingBack',
        actions: [
          beginRollback(spec, (ctx, ev) => ({
            outcome: outcomeOfFailure(ctx, ev.type === 'STEP_FAILED' && ev.transient),
            reason: `${o.state}: ${failureText(ev)}`,
          })),
          note((ctx) => `rolling back: ${ctx.failure}`, true),
        ],
      },
      PROGRESS: progressTransitions(spec, o),
      AGENT_LOST: [
        {
          // The target runs the VM now; without its agent nobody can stop it safely elsewhere.
          guard: 'lostHostRunsVm',
          target: 'Failed',
          actions: [
            assign(({ context, event }) => ({
              unreachable: event.type === 'AGENT_LOST' ? withLost(context, event.role) : context.unreachable,
              failure: `${isSameHost(context) ? 'host' : 'target host'} ${context.targetNode} lost during ${o.state}: ${failureText(event)}; the VM is Lost there until its host returns or is evacuated`,
            })),
            note((ctx) => ctx.failure ?? 'target host lost', true),
          ],
        },
        {
          // The source only has clean-up left to do; skip it.
          actions: [assign(({ context }) => ({ unreachable: { ...context.unreachable, source: true } })), note('source host lost: its clean-up is skipped', true)],
        },
      ],
      CANCEL: ignoreCancel(o.state),
    },
  });

/** Remove what the source still holds; failures here no longer affect the VM, which runs on the target. */
export const cleaningUpState = () =>
  moveSetup.createStateConfig({
    tags: [COMMITTED_TAG],
    entry: assign(({ event }) => ({ watch: freshWatch(event.at), stepTry: 0 })),
    always: [
      { guard: 'sameHost', target: 'Succeeded' },
      { guard: 'sourceUnreachable', target: 'Succeeded', actions: note('source host unreachable: its leftovers are removed when its agent returns', true) },
    ],
    on: {
      STEP_SUCCEEDED: { guard: { type: 'isCurrentStep', params: { state: 'CleaningUp' } }, target: 'Succeeded' },
      STEP_FAILED: [
        {
          guard: and([{ type: 'isCurrentStep', params: { state: 'CleaningUp' as MovePhase } }, 'mayRetryStep']),
          actions: [assign(({ context }) => ({ stepTry: context.stepTry + 1 })), note((_, e) => `clean-up failed, retrying: ${failureText(e)}`, true)],
        },
        {
          guard: { type: 'isCurrentStep', params: { state: 'CleaningUp' } },
          target: 'Succeeded',
          actions: note((_, e) => `the VM runs on the target, but the source's leftovers could not be removed: ${failureText(e)}`, true),
        },
      ],
      AGENT_LOST: {
        target: 'Succeeded',
        actions: note(
          (ctx, e) =>
            e.type === 'AGENT_LOST' && e.role === 'target'
              ? `the VM runs on ${ctx.targetNode}, but that host's agent was lost during clean-up: the source's copy on ${ctx.sourceNode} is kept`
              : 'source host lost during clean-up: its leftovers are removed when its agent returns',
          true,
        ),
      },
      CANCEL: ignoreCancel('CleaningUp'),
    },
  });

const advanceRollback = assign(({ context }) => ({
  rollback: context.rollback ? { ...context.rollback, index: context.rollback.index + 1 } : context.rollback,
  stepTry: 0,
}));

/** A rollback step that starts the VM on the source again. */
const startsOnSource = (s: Step): boolean => s.role === 'source' && (s.request.kind === 'startVm' || s.request.kind === 'resumeSource');

/**
 * The VM ran on the target and may still run there (its removal failed, or its host is lost):
 * starting it on the source as well would run it twice, on shared disks too. Drop those steps
 * (from position `from` on) and end Failed; the final words say where the VM may be.
 */
const keepOffSource = (plan: RollbackPlan, from: number): RollbackPlan => {
  const dropped = plan.steps.slice(from).filter(startsOnSource);
  return {
    ...plan,
    steps: [...plan.steps.slice(0, from), ...plan.steps.slice(from).filter((s) => !startsOnSource(s))],
    outcome: 'Failed',
    incomplete: [...(plan.incomplete ?? []), ...dropped.map((step) => ({ step, why: 'left out (the VM may still run on the target)' }))],
  };
};

/** The VM was started on the target (a VM that stays stopped never is). */
const mayRunOnTarget = (ctx: MoveContext): boolean => ctx.vmRunning && ctx.reached.targetStarted && !isSameHost(ctx);

const nextAttemptAt = (ctx: MoveContext, at: string): string => addMs(at, retryDelayMs(ctx.attempt));

const resetAttempt = assign(({ context, event }) => ({
  attempt: context.attempt + 1,
  notBefore: nextAttemptAt(context, event.at),
  targetNode: undefined,
  endpoint: undefined,
  guestHeartbeat: undefined,
  rung: 0,
  watch: undefined,
  rollback: undefined,
  stepTry: 0,
  reached: { sourceStopped: false, targetPrepared: false, migrationStarted: false, targetStarted: false },
  unreachable: { source: false, target: false },
}));

/**
 * Where a finished rollback leaves the VM, when it did not simply put it back: a host was
 * unreachable, or a step failed or was left out. Empty when the VM is where it was.
 */
function whereaboutsAfterRollback(ctx: MoveContext): string[] {
  const plan = ctx.rollback;
  const missing = plan?.incomplete ?? [];
  if (!missing.length && !ctx.unreachable.source) return [];
  const src = ctx.sourceNode;
  const missed = (s: Step) => missing.some((m) => m.step.name === s.name);
  const onTarget = mayRunOnTarget(ctx) && missing.some((m) => m.step.role === 'target');
  const where: string[] = [];
  if (onTarget) where.push(`the VM may still run on ${ctx.targetNode}, so it was not started again on ${src}`);
  if (ctx.unreachable.source) {
    // Unreachable: the VM may still run there (a lost agent) or the host is off (fenced).
    where.push(`${onTarget ? '' : 'the VM runs nowhere else; '}the source host ${src} is unreachable: the VM is Lost there until that host returns`);
  } else if (!onTarget) {
    if (plan?.steps.some((s) => startsOnSource(s) && !missed(s))) where.push(`the VM runs on ${src} again`);
    else if (missing.some((m) => startsOnSource(m.step))) where.push(`the VM was not started again on ${src}`);
    else where.push(ctx.vmRunning ? `the VM runs on ${src}` : `the VM stays stopped on ${src}`);
  }
  if (missing.length) where.push(`the rollback is incomplete: ${missing.map((m) => `${m.step.name} ${m.why}`).join(', ')}`);
  return where;
}

/**
 * Undo what this attempt reached, step by step, then end Failed or Cancelled — or go back to
 * Pending for another attempt after a transient failure.
 */
export const rollingBackState = () =>
  moveSetup.createStateConfig({
    entry: assign(({ event }) => ({ watch: freshWatch(event.at) })),
    always: [
      {
        guard: and(['rollbackDone', 'isRetry']),
        target: 'Pending',
        actions: [
          note((ctx, ev) => {
            const where = whereaboutsAfterRollback(ctx);
            return `rolled back${where.length ? ` as far as it could (${where.join('; ')})` : ''}; attempt ${ctx.attempt + 1} starts after ${nextAttemptAt(ctx, ev.at)}`;
          }),
          resetAttempt,
        ],
      },
      {
        guard: and(['rollbackDone', 'isCancel']),
        target: 'Cancelled',
        actions: note((ctx) => {
          const where = whereaboutsAfterRollback(ctx);
          return where.length ? `cancelled; ${where.join('; ')}` : 'rolled back: the VM is where it was';
        }),
      },
      {
        guard: 'rollbackDone',
        target: 'Failed',
        actions: note((ctx) => {
          const where = whereaboutsAfterRollback(ctx);
          return where.length ? `failed: ${ctx.failure}; ${where.join('; ')}` : `rolled back after: ${ctx.failure}`;
        }),
      },
    ],
    on: {
      STEP_SUCCEEDED: { guard: { type: 'isCurrentStep', params: { state: 'RollingBack' } }, target: 'RollingBack', reenter: false, actions: advanceRollback },
      STEP_FAILED: [
        {
          guard: and([{ type: 'isCurrentStep', params: { state: 'RollingBack' as MovePhase } }, 'mayRetryStep']),
          actions: [assign(({ context }) => ({ stepTry: context.stepTry + 1 })), note((_, e) => `rollback step failed, retrying: ${failureText(e)}`, true)],
        },
        {
          guard: { type: 'isCurrentStep', params: { state: 'RollingBack' } },
          actions: [
            note((ctx, e) => `rollback step ${ctx.rollback?.steps[ctx.rollback.index]?.name ?? '?'} failed: ${failureText(e)}`, true),
            assign(({ context, event }) => {
              const plan = context.rollback;
              if (!plan) return {};
              const step = plan.steps[plan.index];
              const failed = step ? { ...plan, incomplete: [...(plan.incomplete ?? []), { step, why: `failed (${failureText(event)})` }] } : plan;
              return { rollback: step?.role === 'target' && mayRunOnTarget(context) ? keepOffSource(failed, plan.index + 1) : noRetry(failed) };
            }),
            advanceRollback,
          ],
        },
      ],
      AGENT_LOST: {
        actions: [
          assign(({ context, event }) => {
            const role = event.type === 'AGENT_LOST' ? event.role : undefined;
            const plan = context.rollback;
            if (!role || !plan) return {};
            // Drop the lost host's remaining steps; the others still run.
            const unreachable = withLost(context, role);
            const remaining = plan.steps.slice(plan.index).filter((s) => !unreachable[s.role]);
            const skipped = plan.steps.slice(plan.index).filter((s) => unreachable[s.role]).map((step) => ({ step, why: `skipped (${step.role} host unreachable)` }));
            const trimmed = { ...plan, steps: [...plan.steps.slice(0, plan.index), ...remaining], incomplete: [...(plan.incomplete ?? []), ...skipped] };
            const rollback = mayRetryFrom({ ...context, unreachable }) ? trimmed : noRetry(trimmed);
            // Lost before the target's copy was removed: the VM may still run there.
            const targetKept = role === 'target' && mayRunOnTarget(context) && plan.steps.slice(plan.index).some((s) => s.role === 'target');
            return { unreachable, rollback: targetKept ? keepOffSource(rollback, plan.index) : rollback, stepTry: 0 };
          }),
          note((_, e) => `${e.type === 'AGENT_LOST' ? e.role : ''} host lost while rolling back: its steps are skipped`, true),
        ],
      },
      PROGRESS: {},
      CANCEL: {
        // Already undoing; a cancel only stops a retry that would follow.
        actions: assign(({ context }) => ({
          cancelRequested: true,
          rollback: context.rollback && context.rollback.outcome === 'Retry' ? { ...context.rollback, outcome: 'Cancelled' } : context.rollback,
        })),
      },
    },
  });

export const finalStates = {
  Succeeded: { type: 'final' as const },
  Failed: { type: 'final' as const },
  Cancelled: { type: 'final' as const },
};

/** Helpers for step tables. */
export const onSource = (name: string, request: Step['request'], resources: Step['resources'] = 'before'): Step => ({ name, role: 'source', resources, request });
export const onTarget = (name: string, request: Step['request'], resources: Step['resources'] = 'after'): Step => ({ name, role: 'target', resources, request });
export type { Role };
