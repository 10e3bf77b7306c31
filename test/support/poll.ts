// Waiting for something a test cannot be told about: ask again until it answers.
import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Treat a probe that throws as "not yet" (the last error goes into the timeout message); by default it fails the wait at once. */
  retryErrors?: boolean;
  /** More to say when the wait times out (a log tail, a process's output). */
  context?: () => string;
}

/** Calls `probe` until it answers something other than undefined or false, and returns that. */
export async function pollUntil<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, o: PollOptions): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      if (!o.retryErrors) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError ? ` (last error: ${String(lastError)})` : '';
      throw new Error(`timed out after ${o.timeoutMs} ms waiting for ${what}${why}${o.context ? `\n${o.context()}` : ''}`);
    }
    await sleep(o.intervalMs ?? 200);
  }
}
