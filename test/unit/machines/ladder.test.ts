// The convergence ladder of a live move, and the timeouts every step is held to.
import { ladder, rungAt, type MoveEvent, type ResolvedPolicy } from '../../../src/machines';
import { AUTO_CONVERGE_STALLED_PASSES, measureThroughput, patienceOf, rungsClimbed, STALLED_PASSES, throttleStep, tuningAt } from '../../../src/machines/ladder';
import { MoveDriver } from './drive';
import { GiB, POLICY, scenario, SOURCE, TARGET } from './scenarios';

const MiB = 1024 ** 2;
const policy = (p: Partial<ResolvedPolicy>): ResolvedPolicy => ({ ...POLICY, ...p });

describe('the ladder a policy allows', () => {
  test('more downtime first, in steps up to the allowed maximum', () => {
    expect(ladder(policy({ maxDowntimeMs: 300 })).map((r) => r.name)).toEqual(['max downtime 75 ms', 'max downtime 150 ms', 'max downtime 300 ms']);
  });

  test('then auto-converge, then post-copy, each only when the policy allows it', () => {
    const names = (p: Partial<ResolvedPolicy>) => ladder(policy({ maxDowntimeMs: 300, ...p })).map((r) => r.name).slice(3);
    expect(names({ allowAutoConverge: true, allowPostCopy: true })).toEqual(['auto-converge', 'post-copy']);
    expect(names({ allowAutoConverge: true })).toEqual(['auto-converge']);
    expect(names({ allowPostCopy: true })).toEqual(['post-copy']);
    expect(names({})).toEqual([]);
  });

  test('each rung keeps the bandwidth and turns only its own knob', () => {
    const rungs = ladder(policy({ maxDowntimeMs: 300, bandwidthMiBps: 200, allowAutoConverge: true, allowPostCopy: true }));
    expect(rungs.map((r) => r.tuning)).toMatchObject([
      { bandwidthMiBps: 200, maxDowntimeMs: 75, autoConverge: false, postCopy: false },
      { bandwidthMiBps: 200, maxDowntimeMs: 150, autoConverge: false, postCopy: false },
      { bandwidthMiBps: 200, maxDowntimeMs: 300, autoConverge: false, postCopy: false },
      { bandwidthMiBps: 200, maxDowntimeMs: 300, autoConverge: true, postCopy: false },
      { bandwidthMiBps: 200, maxDowntimeMs: 300, autoConverge: true, postCopy: true },
    ]);
    expect(ladder(policy({ allowPostCopy: true })).at(-1)!.tuning).toMatchObject({ autoConverge: false, postCopy: true });
  });

  test('downtime steps below 20 ms merge', () => {
    expect(ladder(policy({ maxDowntimeMs: 40 })).map((r) => r.tuning.maxDowntimeMs)).toEqual([20, 40]);
    expect(ladder(policy({ maxDowntimeMs: 10 })).map((r) => r.tuning.maxDowntimeMs)).toEqual([20]);
  });
});

/** A live move in Migrating, with a ladder of 3 downtime steps, auto-converge and post-copy. */
function migrating(p: Partial<ResolvedPolicy> = {}): MoveDriver {
  const full = policy({ maxDowntimeMs: 300, allowAutoConverge: true, allowPostCopy: true, ...p });
  const d = new MoveDriver(scenario({ type: 'Live', variant: 'BlockMigration', vmRunning: true, policy: full }));
  d.start().place().succeed();
  expect(d.phase).toBe('Migrating');
  return d;
}

/**
 * `passes` pre-copy passes of a guest that rewrites its dirty set, then one sample: each pass
 * sends the `remaining` bytes the one before left, at `linkMiBps`, and leaves as much again. By
 * default 512 MiB over 8 GiB/s: 62.5 ms of downtime, within the first rung's 75 ms, so every rung
 * is judged with its full patience.
 */
function pass(d: MoveDriver, remaining = 512 * MiB, linkMiBps = 8192, passes = 1): string[] {
  const w = d.ctx.watch!;
  d.wait(Math.round((passes * remaining * 1000) / (linkMiBps * MiB)));
  return d.progress({ processedBytes: w.processedBytes + passes * remaining, remainingBytes: remaining, iteration: w.lastIteration + passes }).map((n) => n.message);
}

/**
 * Passes that leave as much to send as before, until the judge acts: the first pass on a rung
 * sets the mark, three more that do not shrink it by a tenth make it climb (or give up); on the
 * auto-converge rung, nineteen more (the throttle's ramp).
 */
function stall(d: MoveDriver): string[] {
  const rung = d.ctx.rung;
  const notes: string[] = [];
  let passes = 0;
  while (d.phase === 'Migrating' && d.ctx.rung === rung && passes < 40) {
    notes.push(...pass(d));
    passes++;
  }
  expect(passes).toBe(patienceOf(rungAt(d.ctx.policy, rung)) + 1);
  return notes;
}

const tuningOf = (d: MoveDriver) => (d.step?.request.kind === 'migrate' ? d.step.request.tuning : undefined);

describe('a live migration whose remaining bytes do not shrink', () => {
  test('climbs the rungs in order, and the migrate step carries each rung’s tuning', () => {
    const d = migrating();
    const rungs = ladder(d.ctx.policy);
    expect(tuningOf(d)).toEqual(rungs[0]!.tuning);
    const climbed: string[] = [];
    for (let rung = 1; rung < rungs.length; rung++) {
      climbed.push(...stall(d));
      expect(d.ctx.rung).toBe(rung);
      expect(tuningOf(d)).toEqual(rungs[rung]!.tuning);
    }
    expect(climbed).toEqual([
      'not converging: convergence ladder up to rung 1 (max downtime 150 ms)',
      'not converging: convergence ladder up to rung 2 (max downtime 300 ms)',
      'not converging: convergence ladder up to rung 3 (auto-converge); the guest is throttled in steps of 20 %',
      'not converging: convergence ladder up to rung 4 (post-copy)',
    ]);
    // The step is the same operation all along: only its tuning changes.
    expect(d.step?.key).toBe('1.migrating');
  });

  test('rolls back past the top rung, and the VM keeps running on the source', () => {
    const d = migrating({ allowAutoConverge: false, allowPostCopy: false });
    stall(d);
    stall(d);
    expect(d.ctx.rung).toBe(2);
    stall(d);
    expect(d.phase).toBe('RollingBack');
    expect(d.ctx.failure).toBe('did not converge on the last rung (max downtime 300 ms)');
    while (d.phase === 'RollingBack') d.succeed();
    expect(d.phase).toBe('Failed');
    expect(d.runningOn).toEqual([SOURCE]);
  });

  test('never turns on auto-converge or post-copy the policy does not allow', () => {
    const d = migrating({ allowAutoConverge: false, allowPostCopy: false });
    const seen: unknown[] = [tuningOf(d)];
    while (d.phase === 'Migrating') {
      stall(d);
      if (d.phase === 'Migrating') seen.push(tuningOf(d));
    }
    expect(seen).toEqual(ladder(d.ctx.policy).map((r) => r.tuning));
    expect(seen.some((t) => (t as { autoConverge: boolean }).autoConverge || (t as { postCopy: boolean }).postCopy)).toBe(false);
  });

  test('auto-converge gets passes for its throttle to ramp up before it counts as stuck', () => {
    expect([STALLED_PASSES, AUTO_CONVERGE_STALLED_PASSES]).toEqual([3, 19]);
    const d = migrating({ allowPostCopy: false });
    for (let i = 0; i < 3; i++) stall(d);
    expect(rungAt(d.ctx.policy, d.ctx.rung).name).toBe('auto-converge');
    for (let i = 0; i < 1 + STALLED_PASSES; i++) pass(d);
    expect(d.phase).toBe('Migrating');
    for (let i = 0; i < AUTO_CONVERGE_STALLED_PASSES - STALLED_PASSES - 1; i++) pass(d);
    expect(d.phase).toBe('Migrating');
    pass(d);
    expect(d.phase).toBe('RollingBack');
    expect(d.ctx.failure).toBe('did not converge on the last rung (auto-converge)');
  });

  test('a pass that shrinks what remains by a tenth resets the count', () => {
    const d = migrating();
    for (let i = 0; i < 3; i++) pass(d, 512 * MiB);
    pass(d, 460 * MiB);
    for (let i = 0; i < 2; i++) pass(d, 460 * MiB);
    expect(d.ctx.rung).toBe(0);
    pass(d, 460 * MiB);
    expect(d.ctx.rung).toBe(1);
  });

  test('samples within one pass are not passes', () => {
    const d = migrating();
    const w = d.ctx.watch!;
    for (let i = 1; i <= 10; i++) d.progress({ processedBytes: w.processedBytes + i * MiB, remainingBytes: 512 * MiB, iteration: w.lastIteration });
    expect(d.ctx.rung).toBe(0);
  });

  test('passes count, not samples: on a fast link one sample spanning many stalled passes climbs', () => {
    const d = migrating();
    const w = d.ctx.watch!;
    d.wait(1_000).progress({ processedBytes: w.processedBytes + GiB, remainingBytes: 200 * MiB, iteration: w.lastIteration + 1 });
    expect(d.ctx.rung).toBe(0);
    // A second later: ten passes went by, and what remains did not shrink.
    d.wait(1_000).progress({ processedBytes: w.processedBytes + 3 * GiB, remainingBytes: 210 * MiB, iteration: w.lastIteration + 11 });
    expect(d.ctx.rung).toBe(1);
    // The same on the auto-converge rung would still wait for the throttle's ramp (19 passes).
    const a = migrating({ allowPostCopy: false });
    for (let i = 0; i < 3; i++) stall(a);
    const aw = a.ctx.watch!;
    a.wait(1_000).progress({ processedBytes: aw.processedBytes + GiB, remainingBytes: 200 * MiB, iteration: aw.lastIteration + 1 });
    a.wait(1_000).progress({ processedBytes: aw.processedBytes + 3 * GiB, remainingBytes: 210 * MiB, iteration: aw.lastIteration + 11 });
    expect(a.phase).toBe('Migrating');
    a.wait(1_000).progress({ processedBytes: aw.processedBytes + 5 * GiB, remainingBytes: 210 * MiB, iteration: aw.lastIteration + 21 });
    expect(a.phase).toBe('RollingBack');
  });

  test('downtime rungs that could not carry what stays dirty at the link’s speed are passed over, and the history says why', () => {
    // 100 MiB/s: 240 MiB needs 2.4 s of downtime; 150 and 300 ms cannot do it, auto-converge may.
    const d = migrating();
    const notes: string[] = [];
    for (let i = 0; i <= STALLED_PASSES; i++) notes.push(...pass(d, 240 * MiB, 100));
    expect(rungAt(d.ctx.policy, d.ctx.rung).name).toBe('auto-converge');
    // 30 MiB fits 300 ms at 100 MiB/s: seven eighths of the guest's time has to go, so it starts near there.
    expect(tuningOf(d)).toMatchObject({ maxDowntimeMs: 300, autoConverge: true, autoConvergeStepPercent: 90 });
    expect(notes).toEqual([
      'not converging: convergence ladder up to rung 3 (auto-converge); passed over max downtime 150 ms, max downtime 300 ms: at least 240 MiB stays dirty after each pass, 2.4 s of downtime at 100 MiB/s; the guest is throttled in steps of 90 %',
    ]);
  });

  test('only the rungs that cannot do it are passed over', () => {
    // 1000 MiB/s, five passes a sample: 200 MiB needs 200 ms — more than 150 ms, within 300 ms.
    const d = migrating();
    const notes: string[] = [];
    for (let i = 0; i < 2; i++) notes.push(...pass(d, 200 * MiB, 1000, 5));
    expect(notes).toEqual(['not converging: convergence ladder up to rung 2 (max downtime 300 ms); passed over max downtime 150 ms: at least 200 MiB stays dirty after each pass, 200 ms of downtime at 1000 MiB/s']);
  });

  test('a rung measured not to carry what stays dirty gets one stalled pass, not three', () => {
    // 300 MiB/s (a TLS stream here), 256 MiB rewritten each pass: 853 ms of downtime.
    const d = migrating();
    const notes: string[] = [];
    let samples = 0;
    while (d.ctx.rung === 0 && samples < 10) {
      notes.push(...pass(d, 256 * MiB, 300));
      samples++;
    }
    // The first pass sends memory, the second measures what stays dirty, the third does not shrink it.
    expect(samples).toBe(3);
    expect(rungAt(d.ctx.policy, d.ctx.rung).name).toBe('auto-converge');
    expect(notes[0]).toContain('at least 256 MiB stays dirty after each pass, 853 ms of downtime at 300 MiB/s');
  });

  test('what stays dirty is what a pass sends, not what a sample caught part-way through one', () => {
    // Each sample lands late in a pass (16 MiB left of 256); the passes still send 256 MiB each.
    const d = migrating();
    for (let i = 0; i < 2; i++) {
      const w = d.ctx.watch!;
      d.wait(853).progress({ processedBytes: w.processedBytes + 256 * MiB, remainingBytes: 16 * MiB, iteration: w.lastIteration + 1 });
    }
    const w = d.ctx.watch!;
    const notes = d.wait(853).progress({ processedBytes: w.processedBytes + 256 * MiB, remainingBytes: 16 * MiB, iteration: w.lastIteration + 1 }).map((n) => n.message);
    expect(d.ctx.watch?.dirtyPerPassBytes).toBe(256 * MiB);
    expect(notes[0]).toMatch(/up to rung 3 \(auto-converge\); passed over .*: at least 256 MiB stays dirty after each pass/);
  });

  test('a migration whose remaining still shrinks by a tenth a pass keeps its rung', () => {
    const d = migrating();
    let remaining = 1024 * MiB;
    for (let i = 0; i < 6; i++) {
      pass(d, remaining, 300);
      remaining = Math.floor(remaining * 0.85);
    }
    expect(d.ctx.rung).toBe(0);
  });

  test('the last rung is never passed over: without auto-converge or post-copy, the most downtime allowed is still tried', () => {
    const d = migrating({ allowAutoConverge: false, allowPostCopy: false });
    for (let i = 0; i <= STALLED_PASSES; i++) pass(d, 240 * MiB, 100);
    expect(d.phase).toBe('Migrating');
    expect(rungAt(d.ctx.policy, d.ctx.rung).name).toBe('max downtime 300 ms');
  });

  test('a converging migration never climbs', () => {
    const d = migrating();
    let remaining = 2048 * MiB;
    for (let pass = 1; pass <= 8; pass++) {
      remaining = Math.floor(remaining / 2);
      d.wait(1_000).progress({ processedBytes: pass * 512 * MiB, remainingBytes: remaining, iteration: pass });
    }
    d.succeed();
    expect(d.phase).toBe('SwitchingOver');
    expect(d.notes.filter((n) => n.message.startsWith('not converging'))).toEqual([]);
  });
});

describe('the link’s throughput, as the ladder measures it', () => {
  const watch = { startedAt: 't', lastProgressAt: 't', processedBytes: 0, bestRemainingBytes: 0, lastIteration: 0, stalledPasses: 0 };
  const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString();

  test('is the fastest window of at least a second: short gaps between samples do not count', () => {
    let w = measureThroughput(watch, { at: at(0), processedBytes: 0 });
    w = measureThroughput(w, { at: at(100), processedBytes: 50 * MiB }); // 500 MiB/s over 0.1 s: too short to tell
    expect(w.peakBytesPerSecond).toBeUndefined();
    w = measureThroughput(w, { at: at(1_000), processedBytes: 100 * MiB });
    expect(w.peakBytesPerSecond).toBe(100 * MiB);
    w = measureThroughput(w, { at: at(3_000), processedBytes: 120 * MiB }); // zero pages: a slow stretch
    expect(w.peakBytesPerSecond).toBe(100 * MiB);
    w = measureThroughput(w, { at: at(4_000), processedBytes: 320 * MiB });
    expect(w.peakBytesPerSecond).toBe(200 * MiB);
  });
});

describe('auto-converge’s throttle step', () => {
  const watch = { startedAt: 't', lastProgressAt: 't', processedBytes: 0, bestRemainingBytes: 0, lastIteration: 0, stalledPasses: 0 };
  const p = policy({ maxDowntimeMs: 300, allowAutoConverge: true });

  test('is the share of the guest’s time that must go for what stays dirty to fit the downtime, rounded up to 10 %', () => {
    // TLS on this machine: 230 MiB dirty a pass, 261 MiB/s; 78 MiB fits 300 ms, two thirds must go.
    expect(throttleStep(p, { ...watch, dirtyPerPassBytes: 230 * MiB, peakBytesPerSecond: 261 * MiB })).toBe(70);
    // A 100 MiB/s link: 30 MiB fits; the step stops at 90 % (QEMU caps the throttle at 99 %).
    expect(throttleStep(p, { ...watch, dirtyPerPassBytes: 256 * MiB, peakBytesPerSecond: 100 * MiB })).toBe(90);
  });

  test('is QEMU’s usual 20 % when little must go, or nothing was measured', () => {
    expect(throttleStep(p, { ...watch, dirtyPerPassBytes: 36 * MiB, peakBytesPerSecond: 100 * MiB })).toBe(20);
    expect(throttleStep(p, { ...watch, bestRemainingBytes: Number.MAX_SAFE_INTEGER })).toBe(20);
  });

  test('goes into the tuning of the auto-converge rungs only, and only when it is not the default', () => {
    const rungs = ladder(p).length;
    expect(tuningAt(p, rungs - 1, 70)).toMatchObject({ autoConverge: true, autoConvergeStepPercent: 70 });
    expect(tuningAt(p, rungs - 1, 20)).not.toHaveProperty('autoConvergeStepPercent');
    expect(tuningAt(p, 0, 70)).not.toHaveProperty('autoConvergeStepPercent');
  });
});

describe('the rungs a history shows', () => {
  test('are read from the climb notes, with or without the rungs passed over', () => {
    expect(
      rungsClimbed([
        undefined,
        'placed on node-b',
        'not converging: convergence ladder up to rung 1 (max downtime 150 ms)',
        'not converging: convergence ladder up to rung 3 (auto-converge); passed over max downtime 300 ms: at least 240 MiB stays dirty after each pass, 2.4 s of downtime at 100 MiB/s',
      ]),
    ).toEqual(['max downtime 150 ms', 'auto-converge']);
  });
});

describe('timeouts', () => {
  // POLICY: progressTimeoutSeconds 60, completionTimeoutPerGiB 120; the scenarios move 2 GiB.
  const tick = (d: MoveDriver, bytes: number, waitMs: number) => {
    d.wait(waitMs);
    return d.progress({ processedBytes: bytes, remainingBytes: 0, iteration: 0 });
  };

  test('a step that makes no progress for longer than progressTimeoutSeconds rolls back', () => {
    const d = migrating();
    tick(d, 0, 60_000);
    expect(d.phase).toBe('Migrating');
    tick(d, 0, 1_000);
    expect(d.phase).toBe('RollingBack');
    expect(d.ctx.failure).toBe('Migrating: no progress for 61 s (progressTimeoutSeconds 60)');
    expect(d.ctx.rollback?.outcome).toBe('Failed'); // a timeout is not retried
  });

  test('progress resets that clock', () => {
    const d = migrating();
    for (let i = 1; i <= 3; i++) tick(d, i * GiB, 50_000);
    expect(d.phase).toBe('Migrating');
  });

  test('a step still moving after completionTimeoutPerGiB × GiB to move rolls back', () => {
    const d = migrating({ completionTimeoutPerGiB: 60 }); // 2 GiB: 120 s
    for (let s = 1; s <= 12; s++) tick(d, s * 128 * MiB, 10_000);
    expect(d.phase).toBe('Migrating');
    tick(d, 13 * 128 * MiB, 1_000);
    expect(d.ctx.failure).toBe('Migrating: not finished after 121 s (completion timeout 120 s for 2.00 GiB)');
    expect(d.phase).toBe('RollingBack');
  });

  test('moves of less than a GiB get the time of one', () => {
    const s = scenario({ type: 'Cold', variant: 'DiskCopy', vmRunning: true, policy: { completionTimeoutPerGiB: 30 } });
    s.input.bytesToMove = GiB / 2;
    const d = new MoveDriver(s).start().place().succeed();
    expect(d.phase).toBe('CopyingDisks');
    for (let s = 1; s <= 3; s++) tick(d, s * MiB, 10_000);
    expect(d.phase).toBe('CopyingDisks');
    tick(d, 4 * MiB, 1_000);
    expect(d.ctx.failure).toBe('CopyingDisks: not finished after 31 s (completion timeout 30 s for 0.50 GiB)');
  });

  test('past the point of no return a timeout rolls back too: the VM boots again on the source', () => {
    const d = migrating();
    d.succeed().succeed();
    expect(d.phase).toBe('Verifying');
    tick(d, 0, 61_000);
    expect(d.phase).toBe('RollingBack');
    while (d.phase === 'RollingBack') d.succeed();
    expect(d.phase).toBe('Failed');
    expect(d.runningOn).toEqual([SOURCE]);
    expect(d.world.hosts[TARGET]!.vm).toBeUndefined();
  });

  test('progress about another step neither feeds the ladder nor trips a timeout', () => {
    const d = migrating();
    const before = d.ctx.watch;
    const late: MoveEvent = { type: 'PROGRESS', step: '1.preparing-target', processedBytes: 10 * GiB, remainingBytes: 512 * MiB, iteration: 99, at: '' };
    for (let i = 0; i < 5; i++) d.wait(61_000).send(late);
    expect(d.phase).toBe('Migrating');
    expect(d.ctx.watch).toEqual(before);
    expect(d.notes.at(-1)?.message).toBe('placed on node-b; migration stream: TLS required');
  });
});
