// The competition for slots (limits.ts), computed at most every COMPETITION_REUSE_MS instead of at
// every look. Computing it walks every request; with a thousand queued, each looking again every
// 2 s and a hundred woken whenever a slot frees, that was O(requests²) a round — 25 % of the
// controller's CPU at 1,000 queued moves (moves benchmark, --cpu-prof). Reusing it is as if the
// watch were that much later, which it may be anyway: the limits themselves are still counted
// from the moves in flight now, so no limit can be exceeded, only the order be a moment old.
// A request the last computation did not see waiting (new, or its VM just freed) has it computed
// again: otherwise it would not be ranked at all.
import type { Competition } from '../limits';

export const COMPETITION_REUSE_MS = 250;

export class CompetitionMemo {
  private last?: { at: number; value: Competition; waiting: Set<string> };

  /** The competition as of `now` for `uid`'s look: the last one if recent and it saw `uid` waiting. */
  get(uid: string, now: Date, compute: () => Competition): Competition {
    const last = this.last;
    const fresh = last && now.getTime() - last.at >= 0 && now.getTime() - last.at < COMPETITION_REUSE_MS;
    if (fresh && last.waiting.has(uid)) return last.value;
    const value = compute();
    this.last = { at: now.getTime(), value, waiting: new Set(value.waiting.map((w) => w.uid)) };
    return value;
  }
}
