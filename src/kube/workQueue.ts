// A de-duplicating, rate-limited work queue, as client-go's: a key waits in the queue at most
// once; a key is never processed by two workers at once (added while in flight, it runs again
// after); failures requeue with per-key exponential backoff; a handler can ask to look again later.
// What it does is reported to a QueueObserver, in the terms of client-go's workqueue metrics.
import { componentLogger } from '../log';

export interface ReconcileResult {
  /** Look at this key again after this long, even without a change. */
  requeueAfterMs?: number;
}

export type Reconcile = (key: string) => Promise<ReconcileResult | void>;

/**
 * What a queue reports as it works, as client-go's workqueue metrics count it: a key is *added*
 * when it becomes pending (not when it already was), *waits* from then until a worker takes it,
 * and is *worked* from then until its reconcile ends; a failure *retries* it with backoff.
 */
export interface QueueObserver {
  depth(keys: number): void;
  added(): void;
  waited(seconds: number): void;
  worked(seconds: number): void;
  retried(): void;
}

export interface WorkQueueOptions {
  name: string;
  concurrency: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  observer?: QueueObserver;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  /** When each pending key became pending (queued, or dirty while in flight). */
  private readonly pendingSince = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private running = 0;
  private stopped = false;
  /** Keys gather but nothing runs until start(): reconciles must not see half-filled caches. */
  private started = false;
  private idleWaiters: (() => void)[] = [];
  private readonly log;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(
    private readonly reconcile: Reconcile,
    private readonly o: WorkQueueOptions,
  ) {
    this.log = componentLogger('workqueue', { queue: o.name });
    this.baseDelayMs = o.baseDelayMs ?? 50;
    this.maxDelayMs = o.maxDelayMs ?? 60_000;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      if (!this.dirty.has(key)) this.pending(key);
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    if (!this.pendingSince.has(key)) this.pending(key);
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  private pending(key: string): void {
    this.pendingSince.set(key, performance.now());
    this.o.observer?.added();
    this.o.observer?.depth(this.pendingSince.size);
  }

  /** Add after a delay; an earlier pending delay for the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  private addRateLimited(key: string): void {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    this.o.observer?.retried();
    this.addAfter(key, Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (n - 1)));
  }

  /** Begin processing (call once every cache the reconciler reads has synced). */
  start(): void {
    this.started = true;
    this.pump();
  }

  get length(): number {
    return this.queue.length;
  }

  /** Resolves when nothing is queued or in flight (timers may still be pending). */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  stop(): void {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    this.pendingSince.clear();
    this.o.observer?.depth(0);
  }

  private pump(): void {
    if (!this.started) return;
    while (!this.stopped && this.running < this.o.concurrency && this.queue.length > 0) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      this.active.add(key);
      this.running++;
      this.taken(key);
      void this.process(key);
    }
    if (this.queue.length === 0 && this.running === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private taken(key: string): void {
    const since = this.pendingSince.get(key);
    this.pendingSince.delete(key);
    if (since !== undefined) this.o.observer?.waited((performance.now() - since) / 1000);
    this.o.observer?.depth(this.pendingSince.size);
  }

  private async process(key: string): Promise<void> {
    const started = performance.now();
    try {
      const result = await this.reconcile(key);
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      this.log.warn({ key, err: err instanceof Error ? err.message : String(err), failures: (this.failures.get(key) ?? 0) + 1 }, 'reconcile failed; requeued with backoff');
      this.addRateLimited(key);
    } finally {
      this.o.observer?.worked((performance.now() - started) / 1000);
      this.active.delete(key);
      this.running--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
    }
  }
}
