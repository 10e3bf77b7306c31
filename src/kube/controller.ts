// One controller, as controller-runtime shapes it: watches turn changes into keys, one work queue
// holds them (de-duplicated, one reconcile per key at a time, failures retried with backoff), and
// the reconcile of a key reads the world as it is now. Watch handlers only enqueue; all logic is
// in the reconcile. The runtime counts every reconcile and every queue (runtimeMetrics.ts).
import type { InformerHandlers } from './informer';
import type { RuntimeMetrics } from './runtimeMetrics';
import { WorkQueue, type Reconcile, type ReconcileResult } from './workQueue';

/** Anything that reports changes of its objects as an informer does (an informer, or a derived source). */
export interface Watchable<T> {
  on(handlers: InformerHandlers<T>): unknown;
}

/** How an object changed: updated (`old` is the version seen before; none for a new one) or deleted. */
export type Change<T> = { deleted: false; old: T | undefined } | { deleted: true };

export interface Watch<T> {
  informer: Watchable<T>;
  /** The keys to look at again after `obj` changed. */
  toKeys(obj: T, change: Change<T>): Iterable<string>;
  /** Fold the changes of this long into one reconcile per key (for sources that change in bursts). */
  delayMs?: number;
}

export interface ControllerSpec {
  /** The kind reconciled: names the queue, the metrics' labels and the log lines. */
  name: string;
  /** The work queue's name in metrics (default `name`): the resource's plural, as its informer's. */
  queue?: string;
  reconcile: Reconcile;
  // Each watch is typed where it is made; the runtime only hands its objects back to its own toKeys.
  watches: readonly Watch<never>[];
  /** Keys reconciled at once (never the same key twice). */
  concurrency: number;
}

export class Controller {
  private readonly queue: WorkQueue;

  constructor(spec: ControllerSpec, metrics: RuntimeMetrics) {
    this.queue = new WorkQueue(counted(spec.name, spec.reconcile, metrics), { name: spec.queue ?? spec.name, concurrency: spec.concurrency, observer: metrics.queue(spec.queue ?? spec.name) });
    for (const w of spec.watches) {
      const enqueue = (keys: Iterable<string>): void => {
        for (const key of keys) {
          if (w.delayMs) this.queue.addAfter(key, w.delayMs);
          else this.queue.add(key);
        }
      };
      w.informer.on({
        onChange: (obj, old) => enqueue(w.toKeys(obj, { deleted: false, old })),
        onDelete: (obj) => enqueue(w.toKeys(obj, { deleted: true })),
      });
    }
  }

  /**
   * Begin reconciling, once every cache the reconcile reads has synced. Keys gather until then:
   * an informer reports each object as a change on its first list, so every key is queued.
   */
  start(): void {
    this.queue.start();
  }

  stop(): void {
    this.queue.stop();
  }
}

function counted(kind: string, reconcile: Reconcile, metrics: RuntimeMetrics): Reconcile {
  return async (key): Promise<ReconcileResult | void> => {
    const end = metrics.reconcileDuration.startTimer({ kind });
    try {
      const res = await reconcile(key);
      metrics.reconciles.inc({ kind, result: 'ok' });
      return res;
    } catch (e) {
      metrics.reconciles.inc({ kind, result: 'error' });
      metrics.reconcileErrors.inc({ kind });
      throw e;
    } finally {
      end();
    }
  };
}
