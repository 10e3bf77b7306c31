// The convergence ladder of a live move: when pre-copy stops shrinking what remains, climb one
// rung — allow more downtime (up to the policy's limit), then auto-converge (throttle the guest),
// then post-copy — and abort (roll back) past the top. Measured on these machines
// (HYPERVISOR-NOTES.md): bandwidth is the first lever, auto-converge and post-copy rescue a capped
// link, and the dirty rate alone does not tell convergence: whether `remaining` shrinks does.
import { DEFAULT_AUTO_CONVERGE_STEP_PERCENT, type MigrationTuning } from '../protocol/migration';
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

/**
 * A downtime rung that is measured not to carry what stays dirty (below) gets one pass that does
 * not shrink what remains, not three: each more pass on it re-sends the whole dirty set for
 * nothing (the 1 GiB guest over TLS waited 9 s, 2.5 GiB, on a rung that could not do it).
 */
export const HOPELESS_STALLED_PASSES = 1;

/** Stalled passes a rung is allowed before the judge calls it stuck. */
export const patienceOf = (rung: Rung): number =>
  rung.tuning.autoConverge && !rung.tuning.postCopy ? AUTO_CONVERGE_STALLED_PASSES : STALLED_PASSES;

/** The patience of the rung a migration is on, given what was measured: less on a rung that cannot do it, unless it is the last. */
export function patienceOn(policy: ResolvedPolicy, rung: number, watch: StepWatch): number {
  const r = rungAt(policy, rung);
  return hasRungAbove(policy, rung) && watch.dirtyPerPassBytes !== undefined && !carries(r, watch.dirtyPerPassBytes, watch) ? HOPELESS_STALLED_PASSES : patienceOf(r);
}

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

/**
 * Update the watch's figure of what stays dirty after each pass: the bytes sent from one sample to
 * the next ÷ the passes between them, counted from a sample past the first pass (which sends all
 * of memory). A pass sends what was dirty when it began, so this is the dirty set pre-copy keeps
 * finding — unlike `remaining`, which a sample reads part-way through a pass. The least seen is
 * kept: it errs towards patience.
 */
export function measureDirtyPerPass(watch: StepWatch, sample: { processedBytes: number; iteration: number }): StepWatch {
  const passes = sample.iteration - watch.lastIteration;
  if (watch.lastIteration < 2 || passes < 1 || sample.processedBytes <= watch.processedBytes) return watch;
  const perPass = Math.round((sample.processedBytes - watch.processedBytes) / passes);
  return { ...watch, dirtyPerPassBytes: Math.min(watch.dirtyPerPassBytes ?? perPass, perPass) };
}

/** What stays dirty after each pass, as well as it is known: the per-pass figure, else the least `remaining` seen on this rung. */
const dirtyAfterPass = (watch: StepWatch): number => watch.dirtyPerPassBytes ?? watch.bestRemainingBytes;

/** Whether a rung's downtime can carry `bytes` at the fastest the link has gone (unknown speed: assume it can). */
function carries(rung: Rung, bytes: number, watch: StepWatch): boolean {
  const rate = watch.peakBytesPerSecond ?? 0;
  return !isDowntimeRung(rung) || rate <= 0 || bytes <= (rate * rung.tuning.maxDowntimeMs) / 1000;
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
 * downtime and even that downtime could not carry what stays dirty after each pass at the link's
 * measured speed; such rungs are skipped, for waiting on each costs passes (30 s at 100 MiB/s
 * for a 256 MiB dirty set). What stays dirty is the least a pass after the first sent, or before
 * that is measured, the least `remaining` seen on this rung; the speed is the fastest the link
 * has gone. The last rung is never skipped.
 */
export function climbFrom(policy: ResolvedPolicy, rung: number, watch: StepWatch): Climb {
  const rungs = ladder(policy);
  const left = dirtyAfterPass(watch);
  const rate = watch.peakBytesPerSecond ?? 0;
  let next = rung + 1;
  const skipped: Rung[] = [];
  if (rate > 0 && left !== NOTHING_SEEN) {
    while (next + 1 < rungs.length && !carries(rungs[next]!, left, watch)) {
      skipped.push(rungs[next]!);
      next++;
    }
  }
  if (!skipped.length) return { rung: next, skipped };
  const needMs = (left / rate) * 1000;
  const why = `at least ${Math.round(left / MiB)} MiB stays dirty after each pass, ${needMs < 1000 ? `${Math.round(needMs)} ms` : `${(needMs / 1000).toFixed(1)} s`} of downtime at ${Math.round(rate / MiB)} MiB/s`;
  return { rung: next, skipped, why };
}

const THROTTLE_STEP_MAX_PERCENT = 90;

/**
 * Auto-converge's throttle step, from what was measured: the share of the guest's time that has
 * to go for what stays dirty after a pass to fit the allowed downtime at the link's speed — for
 * a guest that dirties at least as fast as pre-copy sends, or it would have converged — rounded
 * up to 10 %, at least the default 20 %. QEMU raises the throttle only every other dirty sync a
 * second or more apart: each step it did not need cost 2-4 s of passes on a free link and 5 s on
 * a 100 MiB/s one (the 1 GiB guest: 20 → 99 % in 10-25 s).
 */
export function throttleStep(policy: ResolvedPolicy, watch: StepWatch): number {
  const left = dirtyAfterPass(watch);
  const rate = watch.peakBytesPerSecond ?? 0;
  if (rate <= 0 || left === NOTHING_SEEN || left <= 0) return DEFAULT_AUTO_CONVERGE_STEP_PERCENT;
  const share = 1 - (rate * policy.maxDowntimeMs) / 1000 / left;
  return Math.min(THROTTLE_STEP_MAX_PERCENT, Math.max(DEFAULT_AUTO_CONVERGE_STEP_PERCENT, Math.ceil(share * 10) * 10));
}

/** The tuning a migration on `rung` is sent: the rung's, with auto-converge's step as chosen at the climb. */
export function tuningAt(policy: ResolvedPolicy, rung: number, throttleStepPercent: number | undefined): MigrationTuning {
  const t = rungAt(policy, rung).tuning;
  return t.autoConverge && throttleStepPercent !== undefined && throttleStepPercent !== DEFAULT_AUTO_CONVERGE_STEP_PERCENT ? { ...t, autoConvergeStepPercent: throttleStepPercent } : t;
}

/** The rungs a move climbed to, in order, read from its history messages (the climb notes above). */
export const rungsClimbed = (messages: (string | undefined)[]): string[] =>
  messages.map((m) => /convergence ladder up to rung \d+ \(([^)]*)\)/.exec(m ?? '')?.[1]).filter((r): r is string => r !== undefined);
