// Prometheus metrics of the controller (scraped from /metrics): the runtime's of every controller
// (reconciles, work queues, informers), leadership, and — while this replica leads — the cluster's
// objects (objectMetrics/), on one registry.
import { Gauge, Registry } from 'prom-client';
import { RuntimeMetrics } from '../kube/runtimeMetrics';
import type { ClusterView } from './clusterView';
import { ObjectMetrics } from './objectMetrics/exporter';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly runtime = new RuntimeMetrics(this.registry);
  readonly leader = new Gauge({ name: 'vmove_controller_leader', help: '1 while this replica leads', registers: [this.registry] });
  private objects?: ObjectMetrics;

  /** Export the objects of `view` (from start() to stop(): while leading). */
  watch(view: ClusterView): ObjectMetrics {
    const objects = new ObjectMetrics(this.registry, () => ({ moves: view.moves.list(), evacuations: view.evacuations.list(), vms: view.vms.list(), agents: view.agents() }));
    view.moves.on({ onChange: (m) => objects.moveChanged(m), onDelete: (m) => objects.moveDeleted(m) });
    view.vms.on({ onChange: (vm) => objects.vmChanged(vm), onDelete: (vm) => objects.vmDeleted(vm) });
    this.objects = objects;
    return objects;
  }

  /** The text a scrape gets, object series brought up to date first. */
  async scrape(): Promise<string> {
    this.objects?.sync();
    return this.registry.metrics();
  }
}
