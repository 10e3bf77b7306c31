// What the controller runtime counts of every controller it runs, in controller-runtime's terms:
// reconciles by result and how long they take, and each work queue's depth, adds, waits, work
// time and retries. One set per registry; the controllers tell theirs apart by label.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { QueueObserver } from './workQueue';

/** controller-runtime's work-queue buckets: 10⁻⁸ … 10³ s, ×10 (docs/metrics.md). */
const QUEUE_BUCKETS = Array.from({ length: 12 }, (_, i) => Number((1e-8 * 10 ** i).toPrecision(1)));
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class RuntimeMetrics {
  readonly reconciles: Counter<'kind' | 'result'>;
  readonly reconcileDuration: Histogram<'kind'>;
  readonly reconcileErrors: Counter<'kind'>;
  private readonly depth: Gauge<'name'>;
  private readonly adds: Counter<'name'>;
  private readonly queueDuration: Histogram<'name'>;
  private readonly workDuration: Histogram<'name'>;
  private readonly retries: Counter<'name'>;
  private readonly informerRestarts: Counter<'name'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.reconciles = new Counter({ name: 'vmove_reconciles_total', help: 'Reconciles by kind and result', labelNames: ['kind', 'result'], registers });
    this.reconcileDuration = new Histogram({ name: 'vmove_reconcile_duration_seconds', help: 'Time one reconcile takes, by kind', labelNames: ['kind'], buckets: RECONCILE_BUCKETS, registers });
    this.reconcileErrors = new Counter({ name: 'vmove_reconcile_errors_total', help: 'Reconciles that failed (and were requeued with backoff), by kind', labelNames: ['kind'], registers });
    this.depth = new Gauge({ name: 'vmove_workqueue_depth', help: 'Keys waiting in a work queue', labelNames: ['name'], registers });
    this.adds = new Counter({ name: 'vmove_workqueue_adds_total', help: 'Keys that became pending in a work queue', labelNames: ['name'], registers });
    this.queueDuration = new Histogram({ name: 'vmove_workqueue_queue_duration_seconds', help: 'Time a key waits in a work queue before a worker takes it', labelNames: ['name'], buckets: QUEUE_BUCKETS, registers });
    this.workDuration = new Histogram({ name: 'vmove_workqueue_work_duration_seconds', help: 'Time a worker spends on one key', labelNames: ['name'], buckets: QUEUE_BUCKETS, registers });
    this.retries = new Counter({ name: 'vmove_workqueue_retries_total', help: 'Keys requeued with backoff after a failure', labelNames: ['name'], registers });
    this.informerRestarts = new Counter({ name: 'vmove_informer_restarts_total', help: 'Watches an informer restarted (closed by the server, failed, or relisted after 410 Gone)', labelNames: ['name'], registers });
  }

  /** The informer called `name` restarted its watch. */
  informerRestarted(name: string): void {
    this.informerRestarts.inc({ name });
  }

  /** The observer of the work queue called `name`. */
  queue(name: string): QueueObserver {
    const labels = { name };
    return {
      depth: (keys) => this.depth.set(labels, keys),
      added: () => this.adds.inc(labels),
      waited: (seconds) => this.queueDuration.observe(labels, seconds),
      worked: (seconds) => this.workDuration.observe(labels, seconds),
      retried: () => this.retries.inc(labels),
    };
  }
}
