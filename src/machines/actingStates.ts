// The states that run an agent step: before the point of no return (acting: a failure rolls
// back), after it (committed: the VM runs on the target, a cancel no longer undoes the move),
// and the clean-up of the source at the end. Every step state follows the same rules for its
// step's results, its progress (timeouts, the convergence ladder), lost agents and cancels.
import { and, assertEvent } from 'xstate';
import type { MovePhase } from '../api/types';
import { rungAt } from './ladder';
import { failureText, note, type MoveStateConfig, type Reach } from './moveSetup';
import { climbOf } from './stepWatch';
import { COMMITTED_TAG } from './vocabulary';

/** Guards that skip a state for this move (straight on to the next). */
export type SkipGuard = 'vmStopped' | 'sourceUnreachable' | 'sharedStorage' | 'sameHost' | 'hotplugVariant' | 'hotplugOrStopped';

export interface StepStateOptions {
  state: MovePhase;
  next: MovePhase;
  /** Entering this state means this much has (possibly) been done; rollback undoes it. */
  reaches?: Reach;
  /** Skip the state (go straight to `next`) when this guard holds. */
  skipWhen?: SkipGuard;
  /** Climb the convergence ladder when pre-copy stalls (live migration). */
  converge?: boolean;
  /** The step's answer, when it succeeds, is a line in history (what a verification found). */
  announce?: boolean;
}

const current = (state: MovePhase) => ({ type: 'isCurrentStep', params: { state } }) as const;
const rollingBackNote = note((ctx) => `rolling back: ${ctx.failure}`, true);

/** Why the ladder climbs, and to which rung. */
const climbNote = note((ctx, ev) => {
  assertEvent(ev, 'PROGRESS');
  const c = climbOf(ctx, ev);
  const passedOver = c.skipped.length ? `; passed over ${c.skipped.map((r) => r.name).join(', ')}: ${c.why}` : '';
  const throttle = c.throttleStepPercent !== undefined && ctx.throttleStepPercent === undefined ? `; the guest is throttled in steps of ${c.throttleStepPercent} %` : '';
  return `not converging: convergence ladder up to rung ${c.rung} (${rungAt(ctx.policy, c.rung).name})${passedOver}${throttle}`;
});

/** What every step state does on entry, and its skip. */
const stepEntry = (o: StepStateOptions) => ({
  entry: { type: 'enterStep', params: { reaches: o.reaches } },
  ...(o.skipWhen ? { always: { guard: o.skipWhen, target: o.next } } : {}),
}) as const;

const stepFailed = (state: MovePhase) =>
  ({ guard: current(state), target: 'RollingBack', actions: [{ type: 'rollBackAfterStepFailure', params: { state } }, rollingBackNote] }) as const;

/** Progress of the state's step: give up on a timeout, climb the ladder or give up when pre-copy stalls (live), else watch it. */
const progress = (o: StepStateOptions) => [
  { guard: { type: 'timedOut', params: { state: o.state } }, target: 'RollingBack', actions: [{ type: 'rollBackAfterTimeout', params: { state: o.state } }, rollingBackNote] } as const,
  ...(o.converge
    ? ([
        { guard: { type: 'stuckOnTopRung', params: { state: o.state } }, target: 'RollingBack', actions: [{ type: 'rollBackNotConverging', params: { state: o.state } }, rollingBackNote] },
        // The note first: it explains the climb from what was seen on the rung being left.
        { guard: { type: 'notConverging', params: { state: o.state } }, actions: [climbNote, 'climbLadder'] },
      ] as const)
    : []),
  { guard: current(o.state), actions: { type: 'watchProgress', params: { converge: !!o.converge } } } as const,
];

const ignoreCancel = (state: MovePhase) =>
  ({
    actions: ['ignoreCancel', note(`cancel arrived during ${state}, after the VM started on the target: the move completes instead of disrupting the VM again`, true)],
  }) as const;

/** A state before the point of no return: the VM still runs (or can run again) on the source. */
export const actingState = (o: StepStateOptions): MoveStateConfig => ({
  ...stepEntry(o),
  on: {
    STEP_SUCCEEDED: { guard: current(o.state), target: o.next, actions: 'keepStepAnswer' },
    STEP_FAILED: stepFailed(o.state),
    PROGRESS: progress(o),
    AGENT_LOST: { target: 'RollingBack', actions: [{ type: 'rollBackAfterLostAgent', params: { state: o.state } }, rollingBackNote] },
    CANCEL: {
      target: 'RollingBack',
      actions: ['recordCancel', { type: 'rollBackOnCancel', params: { state: o.state } }, note(`cancel requested during ${o.state}: rolling back`)],
    },
  },
});

const answerNote = (state: MovePhase) => note((_, e) => (e.type === 'STEP_SUCCEEDED' && e.message ? `${state}: ${e.message}` : `${state} succeeded`));

/** A state past the point of no return: the VM runs (or is starting) on the target. */
export const committedState = (o: StepStateOptions): MoveStateConfig => ({
  tags: [COMMITTED_TAG],
  ...stepEntry(o),
  on: {
    STEP_SUCCEEDED: o.announce ? { guard: current(o.state), target: o.next, actions: answerNote(o.state) } : { guard: current(o.state), target: o.next },
    STEP_FAILED: stepFailed(o.state),
    PROGRESS: progress(o),
    AGENT_LOST: [
      {
        // The target runs the VM now; without its agent nobody can stop it safely elsewhere.
        guard: 'lostHostRunsVm',
        target: 'Failed',
        actions: [{ type: 'loseVmWithHost', params: { state: o.state } }, note((ctx) => ctx.failure ?? 'target host lost', true)],
      },
      // The source only has clean-up left to do; skip it.
      { actions: ['loseSource', note('source host lost: its clean-up is skipped', true)] },
    ],
    CANCEL: ignoreCancel(o.state),
  },
});

/** Remove what the source still holds; failures here no longer affect the VM, which runs on the target. */
export const cleaningUpState = (state: MovePhase): MoveStateConfig => ({
  tags: [COMMITTED_TAG],
  entry: { type: 'enterStep', params: {} },
  always: [
    { guard: 'sameHost', target: 'Succeeded' },
    { guard: 'sourceUnreachable', target: 'Succeeded', actions: note('source host unreachable: its leftovers are removed when its agent returns', true) },
  ],
  on: {
    STEP_SUCCEEDED: { guard: current(state), target: 'Succeeded' },
    STEP_FAILED: [
      { guard: and([current(state), 'mayRetryStep']), actions: ['retryStepInPlace', note((_, e) => `clean-up failed, retrying: ${failureText(e)}`, true)] },
      {
        guard: current(state),
        target: 'Succeeded',
        actions: note((_, e) => `the VM runs on the target, but the source's leftovers could not be removed: ${failureText(e)}`, true),
      },
    ],
    AGENT_LOST: {
      target: 'Succeeded',
      actions: note((ctx, e) => {
        assertEvent(e, 'AGENT_LOST');
        return e.role === 'target'
          ? `the VM runs on ${ctx.targetNode}, but that host's agent was lost during clean-up: the source's copy on ${ctx.sourceNode} is kept`
          : 'source host lost during clean-up: its leftovers are removed when its agent returns';
      }, true),
    },
    CANCEL: ignoreCancel(state),
  },
});
