// The sim's live-migration model: what converges, what does not, and what it reports.
import {
  MiB,
  POSTCOPY_SWITCH_DOWNTIME_MS,
  THROTTLE_MAX_PERCENT,
  advance,
  initialModelState,
  memoryRemainingBytes,
  type GuestModel,
  type ModelState,
  type ModelTuning,
} from '../../../../src/drivers/sim/convergence';

const GiB = 1024 * MiB;

const guest = (over: Partial<GuestModel> = {}): GuestModel => ({
  memoryBytes: 1 * GiB,
  workingSetBytes: 256 * MiB,
  dirtyRateBytesPerSecond: 16 * MiB,
  neverConverge: false,
  ...over,
});

const tuning = (over: Partial<ModelTuning> = {}): ModelTuning => ({
  bandwidthBytesPerSecond: 128 * MiB,
  maxDowntimeMs: 300,
  autoConverge: false,
  postCopy: false,
  ...over,
});

/** Run the model in steps of `stepMs` for at most `limitMs` of simulated time. */
function runFor(g: GuestModel, t: ModelTuning, limitMs: number, stepMs = 50, diskBytes = 0): ModelState {
  let s = initialModelState(g, diskBytes);
  for (let elapsed = 0; elapsed < limitMs && s.phase !== 'done'; elapsed += stepMs) s = advance(s, g, t, stepMs);
  return s;
}

describe('pre-copy convergence', () => {
  test('a guest dirtying slower than the link converges, with downtime within the limit', () => {
    const s = runFor(guest(), tuning(), 60_000);
    expect(s.phase).toBe('done');
    expect(s.downtimeMs).toBeLessThanOrEqual(300);
    expect(s.iteration).toBeGreaterThan(1);
    // Everything of memory went over at least once, plus the re-sent dirty pages.
    expect(s.memoryTransferredBytes).toBeGreaterThan(1 * GiB);
    // 1 GiB at 128 MiB/s is 8 s, plus the passes that follow.
    expect(s.totalTimeMs).toBeGreaterThan(8_000);
    expect(s.totalTimeMs).toBeLessThan(10_000);
  });

  test('a guest dirtying its working set faster than the link never converges at a low downtime limit', () => {
    const g = guest({ dirtyRateBytesPerSecond: 512 * MiB });
    const s = runFor(g, tuning(), 10 * 60_000, 1_000);
    expect(s.phase).toBe('precopy');
    expect(s.iteration).toBeGreaterThan(100);
    // Each pass resends the whole working set: "remaining" stops shrinking.
    expect(memoryRemainingBytes(s, g)).toBeGreaterThanOrEqual(200 * MiB);
  });

  test('the same guest converges with auto-converge, the throttle rising in steps', () => {
    const g = guest({ dirtyRateBytesPerSecond: 512 * MiB });
    const throttles: number[] = [];
    let s = initialModelState(g, 0);
    for (let i = 0; i < 100_000 && s.phase !== 'done'; i++) {
      s = advance(s, g, tuning({ autoConverge: true }), 100);
      if (throttles.at(-1) !== s.throttlePercent) throttles.push(s.throttlePercent);
    }
    expect(s.phase).toBe('done');
    expect(s.downtimeMs).toBeLessThanOrEqual(300);
    expect(throttles.slice(0, 4)).toEqual([0, 20, 40, 60]);
    expect(Math.max(...throttles)).toBeLessThanOrEqual(THROTTLE_MAX_PERCENT);
  });

  test('auto-converge throttles in the step the tuning names, and converges in fewer passes', () => {
    const run = (step?: number) => {
      const g = guest({ dirtyRateBytesPerSecond: 512 * MiB });
      const throttles: number[] = [];
      let s = initialModelState(g, 0);
      for (let i = 0; i < 100_000 && s.phase !== 'done'; i++) {
        s = advance(s, g, tuning({ autoConverge: true, ...(step ? { autoConvergeStepPercent: step } : {}) }), 100);
        if (throttles.at(-1) !== s.throttlePercent) throttles.push(s.throttlePercent);
      }
      return { s, throttles };
    };
    const measured = run(70);
    expect(measured.throttles.slice(0, 3)).toEqual([0, 70, 99]);
    expect(measured.s.phase).toBe('done');
    expect(measured.s.iteration).toBeLessThan(run().s.iteration);
  });

  test('post-copy finishes a guest that pre-copy cannot, in one more pass, with a tiny downtime', () => {
    const g = guest({ dirtyRateBytesPerSecond: 512 * MiB });
    let s = runFor(g, tuning(), 20_000, 100);
    expect(s.phase).toBe('precopy');
    const before = s.elapsedMs;
    s = advance(s, g, tuning({ postCopy: true }), 0);
    expect(s.phase).toBe('postcopy');
    expect(s.downtimeMs).toBe(POSTCOPY_SWITCH_DOWNTIME_MS);
    s = advance(s, g, tuning({ postCopy: true }), 60_000);
    expect(s.phase).toBe('done');
    // At most the working set (plus the unsent part of the pass) was left: ≤ 1 GiB at 128 MiB/s.
    expect(s.totalTimeMs! - before).toBeLessThanOrEqual(8_000);
    expect(memoryRemainingBytes(s, g)).toBe(0);
  });

  test('a never-converge guest defeats auto-converge but not post-copy', () => {
    const g = guest({ neverConverge: true, workingSetBytes: 1 * GiB, dirtyRateBytesPerSecond: 1 * MiB });
    const stuck = runFor(g, tuning({ autoConverge: true }), 10 * 60_000, 1_000);
    expect(stuck.phase).toBe('precopy');
    expect(stuck.throttlePercent).toBe(0);
    const rescued = advance(stuck, g, tuning({ postCopy: true }), 60_000);
    expect(rescued.phase).toBe('done');
  });

  test('an infinite link transfers everything at once with no downtime', () => {
    const g = guest({ dirtyRateBytesPerSecond: 10 * GiB });
    const s = advance(initialModelState(g, 4 * GiB), g, tuning({ bandwidthBytesPerSecond: Infinity }), 0);
    expect(s).toMatchObject({ phase: 'done', downtimeMs: 0, totalTimeMs: 0, diskTransferredBytes: 4 * GiB, memoryTransferredBytes: 1 * GiB });
  });

  test('a larger downtime limit lets the same guest converge', () => {
    const g = guest({ dirtyRateBytesPerSecond: 512 * MiB });
    // 256 MiB working set at 128 MiB/s needs 2 s of downtime.
    expect(runFor(g, tuning({ maxDowntimeMs: 2_100 }), 60_000).phase).toBe('done');
  });
});

describe('block migration and reporting', () => {
  test('disks go first, then memory', () => {
    const g = guest();
    let s = initialModelState(g, 2 * GiB);
    s = advance(s, g, tuning(), 8_000); // 1 GiB of 2 GiB disk at 128 MiB/s
    expect(s).toMatchObject({ phase: 'disk', diskTransferredBytes: 1 * GiB, memoryTransferredBytes: 0, iteration: 0 });
    expect(memoryRemainingBytes(s, g)).toBe(1 * GiB);
    s = advance(s, g, tuning(), 9_000);
    expect(s.phase).toBe('precopy');
    expect(s.diskTransferredBytes).toBe(2 * GiB);
    expect(s.memoryTransferredBytes).toBe(1 * MiB * 128);
  });

  test('the result does not depend on how time is sliced', () => {
    const g = guest({ dirtyRateBytesPerSecond: 100 * MiB });
    const t = tuning({ autoConverge: true });
    const coarse = advance(initialModelState(g, 512 * MiB), g, t, 120_000);
    const fine = runFor(g, t, 120_000, 7, 512 * MiB);
    expect(fine.phase).toBe('done');
    expect(coarse.phase).toBe('done');
    expect(fine.iteration).toBe(coarse.iteration);
    expect(fine.totalTimeMs!).toBeCloseTo(coarse.totalTimeMs!, 0);
  });

  test('remaining shrinks during the first pass as pages are sent', () => {
    const g = guest({ dirtyRateBytesPerSecond: 0 });
    const s = advance(initialModelState(g, 0), g, tuning(), 4_000);
    expect(memoryRemainingBytes(s, g)).toBe(512 * MiB);
    expect(s.memoryTransferredBytes).toBe(512 * MiB);
  });
});
