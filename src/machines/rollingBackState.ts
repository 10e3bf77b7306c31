// Undoing what an attempt reached, one agent step at a time, then ending Failed or Cancelled —
// or going back to Pending for another attempt after a transient failure. What is undone and
// where it leaves the VM is the plan's (rollbackPlan.ts); this state feeds it the results.
import { and, assertEvent } from 'xstate';
import { nextAttemptAt } from './attempts';
import { failureText, note, type MoveStateConfig } from './moveSetup';
import { whereaboutsAfterRollback } from './rollbackPlan';

const current = { type: 'isCurrentStep', params: { state: 'RollingBack' } } as const;

export const rollingBackState = (): MoveStateConfig => ({
  entry: { type: 'enterStep', params: {} },
  always: [
    {
      guard: and(['rollbackDone', 'isRetry']),
      target: 'Pending',
      actions: [
        note((ctx, ev) => {
          const where = whereaboutsAfterRollback(ctx);
          return `rolled back${where.length ? ` as far as it could (${where.join('; ')})` : ''}; attempt ${ctx.attempt + 1} starts after ${nextAttemptAt(ctx, ev.at)}`;
        }),
        'startNextAttempt',
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
    STEP_SUCCEEDED: { guard: current, target: 'RollingBack', reenter: false, actions: 'nextRollbackStep' },
    STEP_FAILED: [
      { guard: and([current, 'mayRetryStep']), actions: ['retryStepInPlace', note((_, e) => `rollback step failed, retrying: ${failureText(e)}`, true)] },
      {
        guard: current,
        actions: [
          note((ctx, e) => `rollback step ${ctx.rollback?.steps[ctx.rollback.index]?.name ?? '?'} failed: ${failureText(e)}`, true),
          'giveUpRollbackStep',
          'nextRollbackStep',
        ],
      },
    ],
    AGENT_LOST: {
      actions: [
        'dropLostHostSteps',
        note((_, e) => {
          assertEvent(e, 'AGENT_LOST');
          return `${e.role} host lost while rolling back: its steps are skipped`;
        }, true),
      ],
    },
    PROGRESS: {},
    CANCEL: { actions: 'cancelRetry' },
  },
});
