// Prometheus metrics of the controller (scraped from /metrics): the runtime's of every controller
// (reconciles, work queues) and vmove's own (moves, leadership), on one registry.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { RuntimeMetrics } from '../kube/runtimeMetrics';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly runtime = new RuntimeMetrics(this.registry);
  readonly movesFinished = new Counter({ name: 'vmove_moves_finished_total', help: 'MoveRequests that ended, by move type and phase', labelNames: ['move_type', 'phase'], registers: [this.registry] });
  readonly moveDuration = new Histogram({
    name: 'vmove_move_duration_seconds',
    help: 'Time from a move leaving Pending to its end, by move type and phase',
    labelNames: ['move_type', 'phase'],
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900],
    registers: [this.registry],
  });
  readonly leader = new Gauge({ name: 'vmove_controller_leader', help: '1 while this replica leads', registers: [this.registry] });
}
