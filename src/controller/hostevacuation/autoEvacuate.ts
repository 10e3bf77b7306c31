// With `autoEvacuateDeadHosts` on, a host that is dead and fenced and still holds VMs gets a
// HostEvacuation without anyone asking: one per death, so an evacuation that ended (or was
// deleted by an operator to try again) is not recreated behind their back for the same death.
import { createHash } from 'node:crypto';
import { API_VERSION, type HostEvacuation, type VirtualMachine } from '../../api/types';
import { isAlreadyExists, type KubeApi } from '../../kube/api';
import type { EventRecorder } from '../../kube/events';
import { vmovePath } from '../../kube/paths';
import { componentLogger } from '../../log';
import type { ClusterView, HostFacts } from '../clusterView';
import type { ControllerConfig } from '../config';
import { classifyHost } from './hostState';
import { AUTO_EVACUATION_LABEL } from './names';
import { isFinal } from './phase';
import { vmHost } from './vms';

const SWEEP_MS = 5_000;
const MAX_NAME = 63;

export interface Recovery {
  node: string;
  name: string;
  why: string;
}

/** `recover-<node>-<n>`, shortened with a hash when the node's name is long (names are label values, at most 63). */
export function recoveryName(node: string, n: number): string {
  const suffix = `-${n}`;
  const full = `recover-${node}${suffix}`;
  if (full.length <= MAX_NAME) return full;
  const hash = createHash('sha256').update(node).digest('hex').slice(0, 8);
  const room = MAX_NAME - 'recover-'.length - hash.length - 1 - suffix.length;
  const head = node.slice(0, room).replace(/[^a-z0-9]+$/, '');
  return `recover-${head}-${hash}${suffix}`;
}

/** The dead, fenced hosts that hold VMs and have no evacuation for this death yet. Pure. */
export function hostsToRecover(hosts: HostFacts[], evacuations: HostEvacuation[], vms: VirtualMachine[], deadHostAfterSeconds: number, now: number): Recovery[] {
  const out: Recovery[] = [];
  for (const h of hosts) {
    const s = classifyHost(h, deadHostAfterSeconds, h.node);
    if (s.state !== 'Dead' || !s.fenced) continue;
    if (!vms.some((vm) => vmHost(vm) === h.node && !vm.metadata.deletionTimestamp)) continue;
    const mine = evacuations.filter((e) => e.spec.nodeName === h.node);
    if (mine.some((e) => !isFinal(e.status?.phase) || e.metadata.deletionTimestamp)) continue;
    // The lease expired at this instant; an evacuation made since then already answers this death.
    const diedAt = h.agent ? now - h.agent.expiredForSeconds * 1000 : 0;
    if (mine.some((e) => Date.parse(e.metadata.creationTimestamp ?? '') >= diedAt - 1_000)) continue;
    const autos = mine.filter((e) => e.metadata.labels?.[AUTO_EVACUATION_LABEL] === 'true').length;
    out.push({ node: h.node, name: recoveryName(h.node, autos + 1), why: s.why });
  }
  return out;
}

export class DeadHostRecovery {
  private timer?: NodeJS.Timeout;
  private running = false;
  private readonly log = componentLogger('dead-host-recovery');

  constructor(private readonly d: { api: KubeApi; view: ClusterView; events: EventRecorder; config: ControllerConfig }) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sweep(), SWEEP_MS);
    this.timer.unref();
    void this.sweep();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async sweep(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const v = this.d.view;
      for (const r of hostsToRecover(v.hosts(), v.evacuations.list(), v.vms.list(), this.d.config.deadHostAfterSeconds, Date.now())) await this.create(r);
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'dead-host sweep failed; next sweep retries');
    } finally {
      this.running = false;
    }
  }

  private async create(r: Recovery): Promise<void> {
    const body: HostEvacuation = {
      apiVersion: API_VERSION,
      kind: 'HostEvacuation',
      metadata: { name: r.name, labels: { [AUTO_EVACUATION_LABEL]: 'true' } },
      spec: { nodeName: r.node, mode: 'Auto', cordon: true },
    };
    try {
      const created = await this.d.api.create<HostEvacuation>(vmovePath('hostevacuations'), body);
      this.d.view.evacuations.writeThrough(created);
      this.d.events.record(created, 'Warning', 'AutoEvacuation', `created because ${r.why} and it is fenced (autoEvacuateDeadHosts is on): its VMs are recovered on other hosts`);
      this.log.info({ node: r.node, evacuation: r.name }, 'dead host: evacuation created');
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }
}
