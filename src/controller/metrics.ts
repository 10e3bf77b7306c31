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
  private view?: ClusterView;
  /** The cluster's objects; they export nothing until start() (when this replica leads). */
  readonly objects = new ObjectMetrics(this.registry, () => {
    const v = this.view;
    return v ? { moves: v.moves.list(), evacuations: v.evacuations.list(), vms: v.vms.list(), agents: v.agents() } : { moves: [], evacuations: [], vms: [], agents: [] };
  });

  /** Export the objects of `view`'s caches. */
  watch(view: ClusterView): ObjectMetrics {
    this.view = view;
    view.moves.on({ onChange: (m) => this.objects.moveChanged(m), onDelete: (m) => this.objects.moveDeleted(m) });
    view.vms.on({ onChange: (vm) => this.objects.vmChanged(vm), onDelete: (vm) => this.objects.vmDeleted(vm) });
    return this.objects;
  }

  /** The text a scrape gets, object series brought up to date first. */
  async scrape(): Promise<string> {
    this.objects.sync();
    return this.registry.metrics();
  }
}
