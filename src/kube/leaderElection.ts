// Leader election on a coordination.k8s.io Lease, with controller-runtime's timings: a 15 s lease,
// a 10 s renew deadline and a 2 s retry period. Whether another holder's lease has expired is
// judged by our own clock since we last saw it change, never by comparing clocks with theirs.
import { componentLogger } from '../log';
import { isAlreadyExists, isConflict, isNotFound, type KubeApi } from './api';
import { leasePath } from './paths';
import { microTime } from './time';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export class LeaderElector {
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private observed?: { holder: string; renewTime: string; at: number };
  private stopped = false;
  private leading = false;
  private readonly log;

  constructor(
    private readonly api: KubeApi,
    private readonly o: LeaderElectionOptions,
  ) {
    this.leaseDurationMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = o.retryPeriodMs ?? 2_000;
    this.log = componentLogger('leader-election', { lease: `${o.namespace}/${o.name}`, identity: o.identity });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Block until this process leads, then call `lead` and keep renewing. Resolves when leadership is
   * lost (renewal failed past the deadline) or `stop()` is called; the caller should then exit,
   * as controller-runtime does, so nothing acts without the lease.
   */
  async run(lead: () => void): Promise<'lost' | 'stopped'> {
    while (!this.stopped && !(await this.tryAcquireOrRenew())) await sleep(this.retryPeriodMs);
    if (this.stopped) return 'stopped';
    this.leading = true;
    this.log.info('became leader');
    lead();
    let lastRenew = Date.now();
    while (!this.stopped) {
      await sleep(this.retryPeriodMs);
      if (this.stopped) break;
      if (await this.tryAcquireOrRenew()) lastRenew = Date.now();
      else if (Date.now() - lastRenew > this.renewDeadlineMs) {
        this.leading = false;
        this.log.error('could not renew the lease before the deadline: leadership lost');
        return 'lost';
      }
    }
    return 'stopped';
  }

  /** Stop renewing and hand the lease over at once (a successor need not wait for it to expire). */
  async release(): Promise<void> {
    this.stopped = true;
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.get<Lease>(this.path());
      if (lease.spec.holderIdentity !== this.o.identity) return;
      await this.api.replace(this.path(), { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime() } });
    } catch (err) {
      this.log.warn({ err: String(err) }, 'could not release the lease');
    }
  }

  private path(): string {
    return leasePath({ namespace: this.o.namespace, name: this.o.name });
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const durationSeconds = Math.round(this.leaseDurationMs / 1000);
    try {
      const lease = await this.api.find<Lease>(this.path());
      if (!lease) {
        await this.api.create(leasePath({ namespace: this.o.namespace }), {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.o.name, namespace: this.o.namespace },
          spec: { holderIdentity: this.o.identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
        return true;
      }
      const holder = lease.spec.holderIdentity ?? '';
      const renewTime = lease.spec.renewTime ?? '';
      if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== renewTime) {
        this.observed = { holder, renewTime, at: Date.now() };
      }
      const heldByOther = holder !== '' && holder !== this.o.identity;
      const theirDurationMs = (lease.spec.leaseDurationSeconds ?? durationSeconds) * 1000;
      if (heldByOther && Date.now() - this.observed.at < theirDurationMs) return false;
      const transitions = (lease.spec.leaseTransitions ?? 0) + (holder === this.o.identity ? 0 : 1);
      await this.api.replace(this.path(), {
        ...lease,
        spec: {
          holderIdentity: this.o.identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: holder === this.o.identity ? lease.spec.acquireTime : microTime(now),
          renewTime: microTime(now),
          leaseTransitions: transitions,
        },
      });
      return true;
    } catch (err) {
      if (isConflict(err) || isAlreadyExists(err) || isNotFound(err)) return false;
      this.log.warn({ err: String(err) }, 'lease acquire/renew failed');
      return false;
    }
  }
}

