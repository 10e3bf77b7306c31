// The agent's heartbeat: a coordination.k8s.io/v1 Lease `vmove-agent-<node>` renewed every 5 s
// with a 15 s duration, carrying the agent's endpoint and host capabilities. The controller
// treats the host as alive while renewTime + leaseDurationSeconds is in the future.
//
// On shutdown the Lease is left to expire rather than deleted. Stopping the agent does not stop
// the host: its VMs keep running (QEMU processes outlive the agent), and most stops are
// restarts (upgrades, config changes) that renew again within seconds. Releasing would tell
// the controller "host gone" at once, and it would start failing moves and planning
// evacuations for a host that is fine. A host that really died stops renewing, and the Lease
// expires 15 s later — the signal the controller needs, without false alarms.
import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { isConflict, isNotFound, type KubeApi } from '../kube/api';
import { leasePath } from '../kube/paths';
import { componentLogger } from '../log';
import { errorMessage } from './errors';
import type { AgentMetrics } from './metrics';
import {
  AGENT_LEASE_SELECTOR,
  AGENT_NAMESPACE_DEFAULT,
  LEASE_CAPABILITIES_ANNOTATION,
  LEASE_ENDPOINT_ANNOTATION,
  LEASE_NODE_LABEL,
  agentLeaseName,
  type HostCapabilities,
} from '../protocol/host';

export const LEASE_RENEW_MS = 5_000;
export const LEASE_DURATION_SECONDS = 15;

const [selectorKey, selectorValue] = AGENT_LEASE_SELECTOR.split('=') as [string, string];

export interface LeaseOptions {
  /** The agent's keep-alive client: a renewal every 5 s must not cost a TLS handshake each. */
  api: KubeApi;
  node: string;
  endpoint: string;
  capabilities: HostCapabilities;
  /** Who holds the Lease (default: the node name). */
  holderIdentity?: string;
  namespace?: string;
  renewMs?: number;
  durationSeconds?: number;
  metrics?: AgentMetrics;
}

/** The Lease as this agent wants it, on top of what the API server has (if anything). */
export function desiredLease(opts: LeaseOptions, current: V1Lease | undefined, now: Date): V1Lease {
  const holder = opts.holderIdentity ?? opts.node;
  const namespace = opts.namespace ?? AGENT_NAMESPACE_DEFAULT;
  const sameHolder = current?.spec?.holderIdentity === holder;
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      ...(current?.metadata ?? {}),
      name: agentLeaseName(opts.node),
      namespace,
      labels: { ...(current?.metadata?.labels ?? {}), [selectorKey]: selectorValue, [LEASE_NODE_LABEL]: opts.node },
      annotations: {
        ...(current?.metadata?.annotations ?? {}),
        [LEASE_ENDPOINT_ANNOTATION]: opts.endpoint,
        [LEASE_CAPABILITIES_ANNOTATION]: JSON.stringify(opts.capabilities),
      },
    },
    spec: {
      holderIdentity: holder,
      leaseDurationSeconds: opts.durationSeconds ?? LEASE_DURATION_SECONDS,
      acquireTime: sameHolder && current?.spec?.acquireTime ? toMicroTime(current.spec.acquireTime) : new V1MicroTime(now.getTime()),
      renewTime: new V1MicroTime(now.getTime()),
      leaseTransitions: (current?.spec?.leaseTransitions ?? 0) + (current && !sameHolder ? 1 : 0),
    },
  };
}

/** client-node hands MicroTime fields back as strings or Dates; send them as MicroTime again. */
function toMicroTime(t: Date | string): V1MicroTime {
  return new V1MicroTime(typeof t === 'string' ? Date.parse(t) : t.getTime());
}

export class AgentLease {
  private readonly log;
  private current?: V1Lease;
  private timer?: NodeJS.Timeout;
  private renewing?: Promise<void>;
  private stopped = false;

  constructor(private readonly opts: LeaseOptions) {
    this.log = componentLogger('agent-lease', { node: opts.node });
  }

  get namespace(): string {
    return this.opts.namespace ?? AGENT_NAMESPACE_DEFAULT;
  }

  /** Take the Lease now (errors are logged and retried on the next renewal) and keep renewing it. */
  async start(): Promise<void> {
    await this.renewOnce();
    this.schedule();
  }

  /** Stop renewing; the Lease expires on its own (see the top of this file). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.renewing;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.renewOnce().finally(() => this.schedule());
    }, this.opts.renewMs ?? LEASE_RENEW_MS);
  }

  private renewOnce(): Promise<void> {
    const end = this.opts.metrics?.leaseRenewDuration.startTimer();
    this.renewing = this.renew().then(
      () => void end?.(),
      (err: unknown) => {
      end?.();
      this.opts.metrics?.leaseRenewFailures.inc();
        this.log.warn({ err: errorMessage(err) }, 'cannot renew the agent Lease; retrying');
      },
    );
    return this.renewing;
  }

  private async renew(): Promise<void> {
    const api = this.opts.api;
    const where = { namespace: this.namespace, name: agentLeaseName(this.opts.node) };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        if (!this.current) {
          this.current = await api.find<V1Lease>(leasePath(where));
          if (!this.current) {
            this.current = await api.create<V1Lease>(leasePath({ namespace: where.namespace }), desiredLease(this.opts, undefined, new Date()));
            this.log.info({ lease: where.name, namespace: where.namespace }, 'agent Lease created');
            return;
          }
        }
        // Replace with the resourceVersion we last saw: a concurrent writer makes it a 409, not a lost update.
        this.current = await api.replace<V1Lease>(leasePath(where), desiredLease(this.opts, this.current, new Date()));
        return;
      } catch (err) {
        if (isConflict(err) || isNotFound(err)) {
          this.current = undefined;
          continue;
        }
        throw err;
      }
    }
  }
}
