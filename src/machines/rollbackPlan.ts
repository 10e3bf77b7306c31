// What a rollback undoes and where it leaves the VM: the plan made when it starts, how a failed
// step or a lost host changes it, and the words that say where the VM is at its end. Pure.
import { isSameHost, mayRetryFrom, withLost } from './attempts';
import type { MoveContext, Role, RollbackOutcome, RollbackPlan, Step } from './vocabulary';

/** The steps that undo what the attempt reached, but for those of hosts already lost. */
export function planRollback(ctx: MoveContext, undo: (ctx: MoveContext) => Step[], outcome: RollbackOutcome, reason: string): RollbackPlan {
  const steps = undo(ctx).filter((s) => !ctx.unreachable[s.role]);
  return { steps, index: 0, outcome, reason };
}

/** A rollback that could not do all it planned leaves the VM in no known state: no retry from there. */
const noRetry = (plan: RollbackPlan): RollbackPlan => (plan.outcome === 'Retry' ? { ...plan, outcome: 'Failed' } : plan);

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

/** The plan once its current step failed for good (`why` says how); the rollback goes on with the next. */
export function afterFailedStep(ctx: MoveContext, why: string): RollbackPlan | undefined {
  const plan = ctx.rollback;
  if (!plan) return plan;
  const step = plan.steps[plan.index];
  const failed = step ? { ...plan, incomplete: [...(plan.incomplete ?? []), { step, why }] } : plan;
  return step?.role === 'target' && mayRunOnTarget(ctx) ? keepOffSource(failed, plan.index + 1) : noRetry(failed);
}

/** The plan once the agent of the host in `role` is lost: its remaining steps are dropped, the others still run. */
export function afterLostHost(ctx: MoveContext, role: Role): Pick<MoveContext, 'unreachable' | 'rollback' | 'stepTry'> | undefined {
  const plan = ctx.rollback;
  if (!plan) return undefined;
  const unreachable = withLost(ctx, role);
  const remaining = plan.steps.slice(plan.index).filter((s) => !unreachable[s.role]);
  const skipped = plan.steps.slice(plan.index).filter((s) => unreachable[s.role]).map((step) => ({ step, why: `skipped (${step.role} host unreachable)` }));
  const trimmed = { ...plan, steps: [...plan.steps.slice(0, plan.index), ...remaining], incomplete: [...(plan.incomplete ?? []), ...skipped] };
  const rollback = mayRetryFrom({ ...ctx, unreachable }) ? trimmed : noRetry(trimmed);
  // Lost before the target's copy was removed: the VM may still run there.
  const targetKept = role === 'target' && mayRunOnTarget(ctx) && plan.steps.slice(plan.index).some((s) => s.role === 'target');
  return { unreachable, rollback: targetKept ? keepOffSource(rollback, plan.index) : rollback, stepTry: 0 };
}

/**
 * Where a finished rollback leaves the VM, when it did not simply put it back: a host was
 * unreachable, or a step failed or was left out. Empty when the VM is where it was.
 */
export function whereaboutsAfterRollback(ctx: MoveContext): string[] {
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
