// The guest's own view of a live migration, the same for every tool that moves it: the test
// guest prints a heartbeat about once a second on its serial console (a file on each host), so
// the time from the last heartbeat on the source to the first on the target, less the usual
// interval, is how long the guest stood still. Heartbeats arrive ±0.1 s apart under TCG, which
// bounds the precision.
import { readFileSync } from 'node:fs';
import { percentile } from './stats';

const HEARTBEAT = /vmove-heartbeat (\d+)/g;
const POLL_MS = 10;

/** When each heartbeat of a guest was first seen in its console files (host clock, ms). */
export class HeartbeatClock {
  private readonly seen = new Map<number, number>();
  private readonly files = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  /** Start watching `file` too (the target's console once it exists). */
  watch(file: string): this {
    this.files.add(file);
    this.timer ??= setInterval(() => this.poll(), POLL_MS);
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.poll();
  }

  /** Heartbeat number → first seen at, in order. */
  samples(): [number, number][] {
    return [...this.seen.entries()].sort((a, b) => a[0] - b[0]);
  }

  last(): number | undefined {
    return this.samples().at(-1)?.[0];
  }

  /** Resolves once heartbeat `n` (or a later one) was seen. */
  async waitFor(n: number, timeoutMs = 180_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.last() ?? 0) < n) {
      if (Date.now() > deadline) throw new Error(`the guest printed no heartbeat ${n} within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private poll(): void {
    const now = Date.now();
    for (const f of this.files) {
      let text: string;
      try {
        text = readFileSync(f, 'latin1');
      } catch {
        continue;
      }
      for (const m of text.matchAll(HEARTBEAT)) {
        const n = Number(m[1]);
        if (!this.seen.has(n)) this.seen.set(n, now);
      }
    }
  }
}

export interface GuestPause {
  /** The longest wait between two heartbeats after `from`, less the median interval (ms). */
  pauseMs: number;
  /** The median interval between heartbeats (ms). */
  intervalMs: number;
  /** The heartbeat the pause ended with. */
  resumedAt: number;
}

/**
 * The guest's longest stand-still among heartbeats numbered after `from` (the last one before
 * the move began). Pure. Undefined without heartbeats on both sides of a gap.
 */
export function guestPause(samples: [number, number][], from: number): GuestPause | undefined {
  const intervals: { n: number; ms: number }[] = [];
  for (let i = 1; i < samples.length; i++) {
    const [n, t] = samples[i]!;
    const [pn, pt] = samples[i - 1]!;
    // A heartbeat missed by the reader (printed between two reads of a file replaced meanwhile) would merge two intervals.
    if (n !== pn + 1) continue;
    intervals.push({ n, ms: t - pt });
  }
  if (intervals.length < 3) return undefined;
  const intervalMs = percentile(intervals.map((i) => i.ms), 50);
  const during = intervals.filter((i) => i.n > from);
  if (during.length === 0) return undefined;
  const worst = during.reduce((a, b) => (b.ms > a.ms ? b : a));
  return { pauseMs: Math.max(0, worst.ms - intervalMs), intervalMs, resumedAt: worst.n };
}
