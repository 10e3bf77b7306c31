// Hosts whose agent or Node changed, as one source of changes the controllers watch (it reports a
// node's name): an agent Lease that appeared, changed holder or went; a Node that changed or went;
// and, since a lease expires without any watch event, a sweep that sees agents die or come back.
import { LEASE_NODE_LABEL } from '../protocol/host';
import type { InformerHandlers } from '../kube/informer';
import type { Watchable } from '../kube/controller';
import type { ClusterView, LeaseObject } from './clusterView';

const LIVENESS_SWEEP_MS = 2_000;

export class HostChanges implements Watchable<string> {
  private readonly handlers: InformerHandlers<string>[] = [];
  private alive = new Map<string, boolean>();
  private sweep?: NodeJS.Timeout;

  constructor(private readonly view: ClusterView) {
    const nodeOf = (l: LeaseObject): string | undefined => l.metadata.labels?.[LEASE_NODE_LABEL] ?? l.spec.holderIdentity;
    view.leases.on({
      onChange: (l, old) => (old?.spec.holderIdentity !== l.spec.holderIdentity || !old ? this.changed(nodeOf(l)) : undefined),
      onDelete: (l) => this.changed(nodeOf(l)),
    });
    view.nodes.on({ onChange: (n) => this.changed(n.metadata.name), onDelete: (n) => this.changed(n.metadata.name) });
  }

  on(h: InformerHandlers<string>): this {
    this.handlers.push(h);
    return this;
  }

  /** Look for agents that died (or came back) every 2 s. */
  start(): void {
    this.sweep = setInterval(() => {
      const now = new Map(this.view.agents().map((a) => [a.node, a.alive]));
      for (const [node, isAlive] of now) if (this.alive.get(node) !== isAlive) this.changed(node);
      this.alive = now;
    }, LIVENESS_SWEEP_MS);
    this.sweep.unref();
  }

  stop(): void {
    clearInterval(this.sweep);
  }

  private changed(node: string | undefined): void {
    if (!node) return;
    for (const h of this.handlers) h.onChange?.(node, undefined);
  }
}
