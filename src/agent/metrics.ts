// Prometheus metrics of one agent (docs/metrics.md, "Agent"), served on its API port at /metrics
// without a token: operations by kind, driver errors, the Lease heartbeat, refused callers, and the
// VMs the driver runs (read from the driver at each scrape).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Driver } from '../drivers/driver';
import type { VmState } from '../protocol/vm';

const VM_STATES: readonly VmState[] = ['Running', 'Paused', 'Stopped', 'Incoming', 'Migrated', 'Crashed'];

export type RefusalReason = 'NoToken' | 'InvalidToken' | 'NotAllowed';

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly registers = [this.registry];
  readonly operationsInFlight = new Gauge({ name: 'vmove_agent_operations_in_flight', help: 'Agent operations running now, by kind', labelNames: ['kind'], registers: this.registers });
  readonly operations = new Counter({ name: 'vmove_agent_operations_total', help: 'Agent operations ended, by kind and result', labelNames: ['kind', 'result'], registers: this.registers });
  readonly operationDuration = new Histogram({
    name: 'vmove_agent_operation_duration_seconds',
    help: "From an operation's start to its end, by kind and result",
    labelNames: ['kind', 'result'],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
    registers: this.registers,
  });
  readonly driverErrors = new Counter({ name: 'vmove_agent_driver_errors_total', help: 'Errors the driver returned, by driver and operation kind (report: the VM inventory poll)', labelNames: ['driver', 'kind'], registers: this.registers });
  readonly leaseRenewDuration = new Histogram({
    name: 'vmove_agent_lease_renew_duration_seconds',
    help: "One renewal of the agent's Lease",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: this.registers,
  });
  readonly leaseRenewFailures = new Counter({ name: 'vmove_agent_lease_renew_failures_total', help: "Renewals of the agent's Lease that failed", registers: this.registers });
  private readonly refusals = new Counter({ name: 'vmove_agent_auth_refusals_total', help: 'Requests refused, by HTTP code and reason', labelNames: ['code', 'reason'], registers: this.registers });
  readonly watchEvents = new Counter({ name: 'vmove_agent_watch_events_total', help: 'Watch events (added, modified, deleted; not bookmarks) the agent received, by kind of object', labelNames: ['kind'], registers: this.registers });
  readonly watchBytes = new Counter({
    name: 'vmove_agent_watch_received_bytes_total',
    help: "Bytes of the API server's answers the agent's caches received, by kind of object and how (list, watch, get)",
    labelNames: ['kind', 'via'],
    registers: this.registers,
  });
  private readonly vms = new Gauge({ name: 'vmove_agent_vms', help: 'VMs on this host by driver state', labelNames: ['state'], registers: this.registers });

  /** What one of the agent's caches received (kube/informer.ts `Received`, or a GET by name). */
  watchReceived(kind: string, r: { via: string; bytes: number; events: number }): void {
    if (r.events) this.watchEvents.inc({ kind }, r.events);
    if (r.bytes) this.watchBytes.inc({ kind, via: r.via }, r.bytes);
  }

  refused(reason: RefusalReason): void {
    this.refusals.inc({ code: reason === 'NotAllowed' ? '403' : '401', reason });
  }

  /** The text a scrape gets, with the VMs counted from the driver now. */
  async scrape(driver: Driver): Promise<string> {
    try {
      const listed = await driver.list();
      for (const state of VM_STATES) this.vms.set({ state }, listed.filter((v) => v.state === state).length);
    } catch {
      this.driverErrors.inc({ driver: driver.kind, kind: 'report' });
    }
    return this.registry.metrics();
  }
}
