// Move priority: which waiting move a free slot goes to (Critical > Maintenance > User, then the
// groups' fair share, then the oldest), aging, and a starvation bound over simulated time.
import type { MovePriority } from '../../../src/api/types';
import type { MoveInFlight } from '../../../src/controller/clusterView';
import { admitMove, effectiveRank, type Competition, type Contender } from '../../../src/controller/limits';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const at = (s: number): string => new Date(T0 + s * 1000).toISOString();
const flight = (uid: string, source = 'n0'): MoveInFlight => ({ uid, key: uid, vmKey: uid, source, target: 'z', moveType: 'Live', after: { cpu: 1, memoryBytes: 1 } });
const AGING = 60;

interface Waiting {
  uid: string;
  priority: MovePriority;
  group: string;
  created: number;
  source: string;
}
const contender = (w: Waiting, nowS: number, aging: number): Contender => ({
  uid: w.uid,
  key: `default/${w.uid}`,
  group: w.group,
  source: w.source,
  moveType: 'Live',
  since: at(w.created),
  rank: effectiveRank(w.priority, at(w.created), T0 + nowS * 1000, aging),
});
/** The waiting moves admitMove lets start now, asked one by one as their reconciles would. */
function admitted(waiting: Waiting[], inFlight: MoveInFlight[], nowS: number, o: { slots: number; aging?: number; groups?: Record<string, string> }): string[] {
  const limits = { parallelMoves: o.slots, outboundPerNode: 100, inboundPerNode: 100 };
  const c: Competition = { waiting: waiting.map((w) => contender(w, nowS, o.aging ?? AGING)), groupOf: new Map([...waiting.map((w) => [w.uid, w.group] as const), ...Object.entries(o.groups ?? {})]) };
  return waiting.filter((w) => admitMove({ uid: w.uid, source: w.source, moveType: 'Live' }, inFlight, limits, c).ok).map((w) => w.uid);
}

describe('effectiveRank', () => {
  test('one class higher per aging period waited, never above Critical', () => {
    expect(effectiveRank('User', at(0), T0 + 59_000, 60)).toBe(2);
    expect(effectiveRank('User', at(0), T0 + 60_000, 60)).toBe(1);
    expect(effectiveRank('User', at(0), T0 + 120_000, 60)).toBe(0);
    expect(effectiveRank('User', at(0), T0 + 10_000_000, 60)).toBe(0);
    expect(effectiveRank('Maintenance', at(0), T0 + 60_000, 60)).toBe(0);
    expect(effectiveRank(undefined, at(0), T0, 60)).toBe(2);
    expect(effectiveRank('Critical', at(0), T0, 60)).toBe(0);
  });
});

describe('free slots go to the highest priority first', () => {
  test('a Critical request made last beats older Maintenance and User ones', () => {
    const w: Waiting[] = [
      { uid: 'user', priority: 'User', group: 'standalone', created: 0, source: 'a' },
      { uid: 'maint', priority: 'Maintenance', group: 'evacuation/e', created: 1, source: 'b' },
      { uid: 'crit', priority: 'Critical', group: 'evacuation/r', created: 2, source: 'c' },
    ];
    expect(admitted(w, [], 10, { slots: 1 })).toEqual(['crit']);
    expect(admitted(w, [], 10, { slots: 2 })).toEqual(['maint', 'crit']);
  });

  test('priority comes before the groups\' fair share; within a class the fair share and age decide as before', () => {
    // Group A holds 2 slots in flight, B none: B would win on fairness, but A's move is Critical.
    const w: Waiting[] = [
      { uid: 'a-crit', priority: 'Critical', group: 'evacuation/A', created: 5, source: 'a' },
      { uid: 'b-user', priority: 'User', group: 'evacuation/B', created: 0, source: 'b' },
      { uid: 'b-crit', priority: 'Critical', group: 'evacuation/B', created: 9, source: 'b' },
    ];
    const inFlight = [flight('a1'), flight('a2')];
    const groups = { a1: 'evacuation/A', a2: 'evacuation/A' };
    // One slot free: among the Critical ones, B has fewer in flight.
    expect(admitted(w, inFlight, 10, { slots: 3, groups })).toEqual(['b-crit']);
    expect(admitted(w, inFlight, 10, { slots: 4, groups })).toEqual(['a-crit', 'b-crit']);
  });

  test('a running move is never preempted: with every slot taken, even Critical waits', () => {
    const w: Waiting[] = [{ uid: 'crit', priority: 'Critical', group: 'standalone', created: 0, source: 'a' }];
    expect(admitted(w, [flight('user-running')], 10, { slots: 1 })).toEqual([]);
  });

  test('an aged User move goes before a younger Critical one', () => {
    const w: Waiting[] = [
      { uid: 'user', priority: 'User', group: 'standalone', created: 0, source: 'a' },
      { uid: 'crit', priority: 'Critical', group: 'standalone', created: 100, source: 'b' },
    ];
    expect(admitted(w, [], 119, { slots: 1 })).toEqual(['crit']);
    expect(admitted(w, [], 120, { slots: 1 })).toEqual(['user']);
  });
});

/**
 * Simulated time, one second a step: one slot, every move takes D s, and Critical moves arrive
 * every `every` s (faster than the slot serves them, so their queue only grows). A User move is
 * made at `userAt`. Returns how long it waited, or undefined if it had not started by `horizon`.
 */
function simulate(o: { D: number; every: number; userAt: number; aging: number; horizon: number; criticalGroup: string }): number | undefined {
  const waiting: Waiting[] = [];
  let running: { uid: string; ends: number } | undefined;
  let n = 0;
  for (let t = 0; t <= o.horizon; t++) {
    if (t % o.every === 0) waiting.push({ uid: `crit-${n++}`, priority: 'Critical', group: o.criticalGroup, created: t, source: `n${n % 7}` });
    if (t === o.userAt) waiting.push({ uid: 'user', priority: 'User', group: 'standalone', created: t, source: 'u' });
    if (running && running.ends <= t) running = undefined;
    if (running) continue;
    const start = admitted(waiting, [], t, { slots: 1, aging: o.aging });
    expect(start.length).toBe(waiting.length ? 1 : 0);
    if (!start.length) continue;
    if (start[0] === 'user') return t - o.userAt;
    waiting.splice(waiting.findIndex((w) => w.uid === start[0]), 1);
    running = { uid: start[0]!, ends: t + o.D };
  }
  return undefined;
}

describe('starvation bound', () => {
  const D = 30;
  const bound = 2 * AGING + D; // two aging steps to Critical, then at most the move holding the slot

  test.each([
    ['standalone', 5],
    ['standalone', 17],
    ['evacuation/recover-node-a-1', 5],
    ['evacuation/recover-node-a-1', 29],
  ])('Critical moves (%s) arriving 3× faster than served: a User move made at %i s waits at most 2·aging + D', (criticalGroup, userAt) => {
    const waited = simulate({ D, every: 10, userAt, aging: AGING, horizon: 3_600, criticalGroup });
    expect(waited).toBeDefined();
    expect(waited!).toBeLessThanOrEqual(bound);
    // And not sooner than aging allows: before two periods it is still below Critical.
    expect(waited!).toBeGreaterThanOrEqual(2 * AGING);
  });

  test('without aging the same User move is still waiting after an hour (what aging prevents)', () => {
    expect(simulate({ D, every: 10, userAt: 5, aging: 0, horizon: 3_600, criticalGroup: 'standalone' })).toBeUndefined();
  });
});
