// The watch over the step in flight: when it started and last moved, how fast it goes, and — for
// a live migration — what the convergence ladder makes of each pre-copy pass. The timeouts and
// the ladder's climbs are judged from it. Pure.
import { climbFrom, judgePass, measureDirtyPerPass, measureThroughput, NOTHING_SEEN, patienceOn, rungAt, throttleStep, type Climb } from './ladder';
import type { MoveContext, MoveEvent, StepWatch } from './vocabulary';

export type ProgressEvent = Extract<MoveEvent, { type: 'PROGRESS' }>;

const GiB = 1024 ** 3;

export const freshWatch = (at: string): StepWatch => ({
  startedAt: at,
  lastProgressAt: at,
  processedBytes: 0,
  bestRemainingBytes: NOTHING_SEEN,
  lastIteration: 0,
  stalledPasses: 0,
});

/** Why the step in flight must be given up on, if it must: no progress, or too slow overall. */
export function timeoutReason(ctx: MoveContext, watch: StepWatch, at: string): string | undefined {
  const quiet = (Date.parse(at) - Date.parse(watch.lastProgressAt)) / 1000;
  if (quiet > ctx.policy.progressTimeoutSeconds) {
    return `no progress for ${Math.round(quiet)} s (progressTimeoutSeconds ${ctx.policy.progressTimeoutSeconds})`;
  }
  const limit = Math.max(1, ctx.bytesToMove / GiB) * ctx.policy.completionTimeoutPerGiB;
  const elapsed = (Date.parse(at) - Date.parse(watch.startedAt)) / 1000;
  if (elapsed > limit) {
    return `not finished after ${Math.round(elapsed)} s (completion timeout ${Math.round(limit)} s for ${(ctx.bytesToMove / GiB).toFixed(2)} GiB)`;
  }
  return undefined;
}

/** Which limit timeoutReason found passed (same comparisons, as a closed set). */
export function timeoutCause(ctx: MoveContext, watch: StepWatch, at: string): 'ProgressTimeout' | 'CompletionTimeout' {
  const quiet = (Date.parse(at) - Date.parse(watch.lastProgressAt)) / 1000;
  return quiet > ctx.policy.progressTimeoutSeconds ? 'ProgressTimeout' : 'CompletionTimeout';
}

/** The watch's link figures with a progress sample: what stays dirty after each pass, and the throughput. */
const measured = (w: StepWatch, event: ProgressEvent): StepWatch => measureThroughput(measureDirtyPerPass(w, event), event);

/** The ladder's judge of a pass, as patient as the current rung needs with what is measured now. */
export const judgeOnRung = (context: MoveContext, event: ProgressEvent) => {
  const w = measured(context.watch!, event);
  return judgePass(w, event, patienceOn(context.policy, context.rung, w));
};

/** The step's watch after a progress sample: the progress clock, link figures, and (live) the ladder's judgement. */
export const watchAfter = (context: MoveContext, event: ProgressEvent, converge: boolean): StepWatch => {
  const w = context.watch!;
  const judged = converge ? judgeOnRung(context, event).watch : measured(w, event);
  const moved = event.processedBytes > w.processedBytes;
  return { ...judged, processedBytes: Math.max(w.processedBytes, event.processedBytes), lastProgressAt: moved ? event.at : w.lastProgressAt };
};

/** Where a stuck migration climbs to, judged with the sample that found it stuck, and (first reaching auto-converge) the throttle's step. */
export function climbOf(context: MoveContext, event: ProgressEvent): Climb & { watch: StepWatch; throttleStepPercent: number | undefined } {
  const watch = watchAfter(context, event, true);
  const climb = climbFrom(context.policy, context.rung, watch);
  const throttleStepPercent = context.throttleStepPercent ?? (rungAt(context.policy, climb.rung).tuning.autoConverge ? throttleStep(context.policy, watch) : undefined);
  return { ...climb, watch, throttleStepPercent };
}
