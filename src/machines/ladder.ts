// The convergence ladder of a live move: when pre-copy stops shrinking what remains, climb one
// rung — allow more downtime (up to the policy's limit), then auto-converge (throttle the guest),
// then post-copy — and abort (roll back) past the top. Measured on these machines
// (HYPERVISOR-NOTES.md): bandwidth is the first lever, auto-converge and post-copy rescue a capped
// link, and the dirty rate alone does not tell convergence: whether `remaining` shrinks does.
import type { MigrationTuning } from '../drivers/driver';
import type { ResolvedPolicy, StepWatch } from './vocabulary';

export interface Rung {
  /** Short name recorded in history. */
  name: string;
  tuning: MigrationTuning;
}

/** Downtime steps as fractions of the allowed maximum. */
const DOWNTIME_STEPS = [0.25, 0.5, 1];
const MIN_DOWNTIME_MS = 20;

export function ladder(policy: ResolvedPolicy): Rung[] {
  // The allow* flags let a driver arm what a later rung may need (QEMU fixes capabilities at start).
  const base = { bandwidthMiBps: policy.bandwidthMiBps, autoConverge: false, postCopy: false, allowAutoConverge: policy.allowAutoConverge, allowPostCopy: policy.allowPostCopy };
  const downtimes = [...new Set(DOWNTIME_STEPS.map((f) => Math.max(MIN_DOWNTIME_MS, Math.round(policy.maxDowntimeMs * f))))];
  const rungs: Rung[] = downtimes.map((ms) => ({
    name: `max downtime ${ms} ms`,
    tuning: { ...base, maxDowntimeMs: ms },
  }));
  const top = { ...base, maxDowntimeMs: policy.maxDowntimeMs };
  if (policy.allowAutoConverge) {
    rungs.push({ name: 'auto-converge', tuning: { ...top, autoConverge: true } });
  }
  if (policy.allowPostCopy) {
    rungs.push({ name: 'post-copy', tuning: { ...top, autoConverge: policy.allowAutoConverge, postCopy: true } });
  }
  return rungs;
}

export const rungAt = (policy: ResolvedPolicy, rung: number): Rung => {
  const rungs = ladder(policy);
  return rungs[Math.min(rung, rungs.length - 1)]!;
};

export const hasRungAbove = (policy: ResolvedPolicy, rung: number): boolean => rung + 1 < ladder(policy).length;

/** Passes in a row without `remaining` shrinking by at least SHRINK before the judge calls it stuck. */
export const STALLED_PASSES = 3;
/**
 * Auto-converge works by degrees: QEMU throttles the guest by 20 % at first and by 10 % more at
 * most every other pass while it still dirties too fast, up to 99 % — 16 passes to full
 * strength. Measured under TCG: a 256 MiB guest rewriting 64 MiB over 32 MiB/s reached 99 % at
 * pass 19 and converged at pass 29, with up to 12 passes in a row without a new low on the way.
 * Its rung gets that ramp on top of the usual patience before it counts as stuck.
 */
export const AUTO_CONVERGE_STALLED_PASSES = 16 + STALLED_PASSES;
const SHRINK = 0.9;

/** Stalled passes a rung is allowed before the judge calls it stuck. */
export const patienceOf = (rung: Rung): number =>
  rung.tuning.autoConverge && !rung.tuning.postCopy ? AUTO_CONVERGE_STALLED_PASSES : STALLED_PASSES;

/**
 * Update the watch with a new progress sample (a new pre-copy pass when `iteration` grew) and
 * say whether the migration is stuck on its current rung (`patience`: see patienceOf).
 */
export function judgePass(
  watch: StepWatch,
  sample: { remainingBytes: number; iteration: number },
  patience = STALLED_PASSES,
): { watch: StepWatch; stuck: boolean } {
  if (sample.iteration <= watch.lastIteration) return { watch, stuck: false };
  const shrank = sample.remainingBytes < watch.bestRemainingBytes * SHRINK;
  const next: StepWatch = {
    ...watch,
    lastIteration: sample.iteration,
    bestRemainingBytes: Math.min(watch.bestRemainingBytes, sample.remainingBytes),
    stalledPasses: shrank ? 0 : watch.stalledPasses + 1,
  };
  return { watch: next, stuck: next.stalledPasses >= patience };
}
