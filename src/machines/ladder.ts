// The convergence ladder of a live move: when pre-copy stops shrinking what remains, climb one
// rung — allow more downtime (up to the policy's limit), then auto-converge (throttle the guest),
// then post-copy — and abort (roll back) past the top. Measured on these machines
// (HYPERVISOR-NOTES.md): bandwidth is the first lever, auto-converge and post-copy rescue a capped
// link, and the dirty rate alone does not tell convergence: whether `remaining` shrinks does.
import type { MigrationTuning } from '../protocol/migration';
import type { ResolvedPolicy, StepWatch } from './vocabulary';

export interface Rung {
  /** Short name recorded in history. */
  name: string;
  tuning: MigrationTuning;
}

/** Stands for "no sample yet" in byte counts; JSON has no Infinity, and the watch is persisted. */
export const NOTHING_SEEN = Number.MAX_SAFE_INTEGER;

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
 * Auto-converge works by degrees: QEMU throttles the guest by 20 % at first and by 20 % more at
 * most every other pass while it still dirties too fast, up to 99 % — 8 passes to full strength
 * with the qemu driver's steps. Under TCG even 99 % leaves the guest dirtying 10-30 MiB/s, and
 * measured with QEMU's default 10 % steps, a 256 MiB guest rewriting 64 MiB over 32 MiB/s went
 * up to 12 passes in a row without a new low before converging. Its rung gets the ramp and that
 * margin (19 passes) before it counts as stuck.
 */
export const AUTO_CONVERGE_STALLED_PASSES = 19;
const SHRINK = 0.9;

/** Stalled passes a rung is allowed before the judge calls it stuck. */
export const patienceOf = (rung: Rung): number =>
  rung.tuning.autoConverge && !rung.tuning.postCopy ? AUTO_CONVERGE_STALLED_PASSES : STALLED_PASSES;

/**
 * Update the watch with a new progress sample (new pre-copy passes when `iteration` grew) and
 * say whether the migration is stuck on its current rung (`patience`: see patienceOf).
 *
 * Patience is counted in passes, not in samples: on a fast link a pass takes a tenth of a
 * second and a sample a second, and ten passes that did not shrink what remains are ten
 * stalled passes. (Counted per sample, each rung cost 4 samples — 5 to 9 s — on a 1 GiB guest
 * whose dirty set could never fit the first rung's downtime.)
 */
export function judgePass(
  watch: StepWatch,
  sample: { remainingBytes: number; iteration: number },
  patience = STALLED_PASSES,
): { watch: StepWatch; stuck: boolean } {
  if (sample.iteration <= watch.lastIteration) return { watch, stuck: false };
  const shrank = sample.remainingBytes < watch.bestRemainingBytes * SHRINK;
  const passes = sample.iteration - watch.lastIteration;
  const next: StepWatch = {
    ...watch,
    lastIteration: sample.iteration,
    bestRemainingBytes: Math.min(watch.bestRemainingBytes, sample.remainingBytes),
    stalledPasses: shrank ? 0 : watch.stalledPasses + passes,
  };
  return { watch: next, stuck: next.stalledPasses >= patience };
}

/** Throughput is measured over windows at least this long (one sample can follow another by 100 ms). */
const THROUGHPUT_WINDOW_MS = 1_000;

/**
 * Update the watch's throughput figures with a progress sample: the highest rate seen over a
 * window of THROUGHPUT_WINDOW_MS is what the link can carry (stretches of zero pages, sent as
 * flags, make a window slower than the link).
 */
export function measureThroughput(watch: StepWatch, sample: { at: string; processedBytes: number }): StepWatch {
  const at = Date.parse(sample.at);
  if (watch.windowAt === undefined || watch.windowBytes === undefined || sample.processedBytes < watch.windowBytes) {
    return { ...watch, windowAt: sample.at, windowBytes: sample.processedBytes };
  }
  const spanMs = at - Date.parse(watch.windowAt);
  if (spanMs < THROUGHPUT_WINDOW_MS) return watch;
  const rate = ((sample.processedBytes - watch.windowBytes) * 1000) / spanMs;
  return { ...watch, windowAt: sample.at, windowBytes: sample.processedBytes, peakBytesPerSecond: Math.max(watch.peakBytesPerSecond ?? 0, Math.round(rate)) };
}

export interface Climb {
  rung: number;
  /** Downtime rungs passed over, and why. */
  skipped: Rung[];
  why?: string;
}

const isDowntimeRung = (r: Rung): boolean => !r.tuning.autoConverge && !r.tuning.postCopy;
const MiB = 1024 * 1024;

/**
 * Where a migration stuck on `rung` climbs to: the next rung — unless it only allows more
 * downtime and even that downtime could not carry what pre-copy leaves at the link's measured
 * speed; such rungs are skipped, for waiting on each costs STALLED_PASSES passes (30 s at
 * 100 MiB/s for a 256 MiB dirty set). The figures err towards not skipping: the least that was
 * left at the start of a pass on this rung, and the fastest the link has gone. The last rung
 * is never skipped.
 */
export function climbFrom(policy: ResolvedPolicy, rung: number, watch: StepWatch): Climb {
  const rungs = ladder(policy);
  const left = watch.bestRemainingBytes;
  const rate = watch.peakBytesPerSecond ?? 0;
  let next = rung + 1;
  const skipped: Rung[] = [];
  if (rate > 0 && left !== NOTHING_SEEN) {
    while (next + 1 < rungs.length && isDowntimeRung(rungs[next]!) && left > (rate * rungs[next]!.tuning.maxDowntimeMs) / 1000) {
      skipped.push(rungs[next]!);
      next++;
    }
  }
  if (!skipped.length) return { rung: next, skipped };
  const needMs = (left / rate) * 1000;
  const why = `at least ${Math.round(left / MiB)} MiB stays dirty after each pass, ${needMs < 1000 ? `${Math.round(needMs)} ms` : `${(needMs / 1000).toFixed(1)} s`} of downtime at ${Math.round(rate / MiB)} MiB/s`;
  return { rung: next, skipped, why };
}

/** The rungs a move climbed to, in order, read from its history messages (the climb notes above). */
export const rungsClimbed = (messages: (string | undefined)[]): string[] =>
  messages.map((m) => /convergence ladder up to rung \d+ \(([^)]*)\)/.exec(m ?? '')?.[1]).filter((r): r is string => r !== undefined);
