// The competition for slots is computed once for many looks: reused while recent, computed again
// when it is older than COMPETITION_REUSE_MS or did not see the asking request waiting.
import { COMPETITION_REUSE_MS, CompetitionMemo } from '../../../../src/controller/moverequest/competitionMemo';
import type { Competition, Contender } from '../../../../src/controller/limits';

const T0 = new Date('2026-12-08T00:00:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const contender = (uid: string): Contender => ({ uid, key: `default/${uid}`, group: 'standalone', source: 'node-a', moveType: 'Live', since: '2026-12-08T00:00:00Z', rank: 2 });

function counting(waiting: string[][]) {
  let calls = 0;
  const compute = (): Competition => ({ waiting: (waiting[Math.min(calls++, waiting.length - 1)] ?? []).map(contender), groupOf: new Map() });
  return { compute, calls: () => calls };
}

test('looks within the reuse window share one computation', () => {
  const memo = new CompetitionMemo();
  const c = counting([['a', 'b', 'c']]);
  for (const [uid, ms] of [['a', 0], ['b', 10], ['c', COMPETITION_REUSE_MS - 1]] as const) memo.get(uid, at(ms), c.compute);
  expect(c.calls()).toBe(1);
});

test('an older one is computed again', () => {
  const memo = new CompetitionMemo();
  const c = counting([['a', 'b']]);
  memo.get('a', T0, c.compute);
  memo.get('b', at(COMPETITION_REUSE_MS), c.compute);
  expect(c.calls()).toBe(2);
});

test('a request it did not see waiting (new, or its VM just freed) has it computed again, and is ranked in it', () => {
  const memo = new CompetitionMemo();
  const c = counting([['a'], ['a', 'new']]);
  memo.get('a', T0, c.compute);
  const seen = memo.get('new', at(5), c.compute);
  expect(c.calls()).toBe(2);
  expect(seen.waiting.map((w) => w.uid)).toEqual(['a', 'new']);
  memo.get('a', at(6), c.compute);
  expect(c.calls()).toBe(2);
});

test('a clock that went back does not reuse a computation from its future', () => {
  const memo = new CompetitionMemo();
  const c = counting([['a']]);
  memo.get('a', at(1_000), c.compute);
  memo.get('a', T0, c.compute);
  expect(c.calls()).toBe(2);
});
