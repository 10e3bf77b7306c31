// Reports the VMs this host runs into VirtualMachine.status: where they run (nodeName), their
// phase, and CPU/memory as running. Every few seconds, after each operation, and when a
// VirtualMachine changes, it compares what the driver says with what the status says and
// merge-patches the status subresource only when something differs. It writes nothing but
// nodeName, phase, cpu and memory, and the guest's readiness (guestStatus.ts: GuestReady and
// status.guest) — the controller owns scheduledNode and moveRef — and nothing for VMs in the
// middle of a hand-over (Incoming, Paused, Migrated). Each pass also
// shows the host's copies to the leftover collector (leftovers.ts), which sees the same VMs.
// It watches only the VMs placed on its node (vmWatch.ts); for a copy here whose VM is not among
// them (the target of a move in flight, a copy left behind by a VM that runs elsewhere now) it
// fetches that VM by name, at most once a second, so it decides from the same facts as before.
import type { KubeConfig } from '@kubernetes/client-node';
import { formatBytes } from '../api/quantity';
import { PLURALS, type VirtualMachine, type VirtualMachineStatus } from '../api/types';
import type { Driver } from '../drivers/driver';
import { isConflict, isNotFound, type ApiError, type KubeApi } from '../kube/api';
import { vmovePath } from '../kube/paths';
import { parseVmId, type VmInfo } from '../protocol/vm';
import { componentLogger } from '../log';
import { errorMessage } from './errors';
import { guestChanges, HeartbeatClock, type GuestChanges } from './guestStatus';
import type { LeftoverCollector } from './leftovers';
import { VirtualMachineWatch, type VirtualMachineWatchHandle, type VmViewEvents } from './vmWatch';

/** How long a VM fetched by name (not in the watched view) is used before it is fetched again. */
const OUTSIDE_TTL_MS = 1_000;

const rvOf = (vm: VirtualMachine | undefined): number => Number(vm?.metadata.resourceVersion ?? -1);

export type ReportedStatus = Pick<VirtualMachineStatus, 'nodeName' | 'phase' | 'cpu' | 'memory'>;
type StatusPatch = Partial<ReportedStatus> & GuestChanges;

/**
 * The status fields this node should change for `vm`, given what its driver reports; undefined
 * when there is nothing to write. Pure.
 */
export function statusChanges(vm: VirtualMachine, info: VmInfo, node: string): Partial<ReportedStatus> | undefined {
  if (info.uid !== vm.metadata.uid) return undefined;
  const st = vm.status ?? {};
  const held = st.moveRef !== undefined && st.moveRef !== null;
  let want: ReportedStatus;
  switch (info.state) {
    case 'Running':
      want = { nodeName: node, phase: held ? 'Moving' : 'Running', cpu: info.cpu, memory: formatBytes(info.memoryBytes) };
      break;
    case 'Stopped':
    case 'Crashed': {
      // A stopped definition may linger on a host the VM left: only the VM's own host speaks.
      const home = st.nodeName ? st.nodeName === node : st.scheduledNode === node;
      if (!home || held) return undefined;
      want = { nodeName: node, phase: info.state === 'Stopped' ? 'Stopped' : 'Failed' };
      break;
    }
    default:
      return undefined;
  }
  const changes: Partial<ReportedStatus> = {};
  for (const key of Object.keys(want) as (keyof ReportedStatus)[]) {
    if (st[key] !== want[key]) (changes as Record<string, unknown>)[key] = want[key];
  }
  return Object.keys(changes).length ? changes : undefined;
}

/** A state whose status this host reports (a VM mid-hand-over is the move's). */
const reportsHere = (info: VmInfo): boolean => info.state === 'Running' || info.state === 'Stopped' || info.state === 'Crashed';

export interface VmReporterOptions {
  /** Where the VM view's watch comes from (agents sharing a KubeConfig share one watch). */
  kubeconfig: KubeConfig;
  /** Status patches go over the agent's keep-alive client, not a new connection each. */
  api: KubeApi;
  node: string;
  driver: Driver;
  intervalMs?: number;
  leftovers?: LeftoverCollector;
  /** Told when the driver fails to list its VMs (vmove_agent_driver_errors_total, kind `report`). */
  listFailed?: () => void;
  /** Watch every VM in the cluster instead of this node's (--watch-all-vms; for comparison only). */
  watchAllVms?: boolean;
  /** Told what the VM view receives (vmove_agent_watch_events_total, _received_bytes_total). */
  received?: VmViewEvents['onReceived'];
}

export class VmStatusReporter {
  private watch?: VirtualMachineWatchHandle;
  private readonly log;
  /** Objects as our own patches returned them, until the watch catches up. */
  private readonly written = new Map<string, VirtualMachine>();
  /** VMs of copies here that are not in the watched view, as last fetched by name (undefined: none). */
  private readonly outside = new Map<string, { vm: VirtualMachine | undefined; at: number }>();
  /** What this host saw of each guest's heartbeat: a stall is judged from it, not from the last write. */
  private readonly heartbeats = new HeartbeatClock();
  private timer?: NodeJS.Timeout;
  private kickTimer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(private readonly opts: VmReporterOptions) {
    this.log = componentLogger('agent-vm-reporter', { node: opts.node });
  }

  async start(): Promise<void> {
    this.watch = await VirtualMachineWatch.acquire(
      this.opts.kubeconfig,
      { node: this.opts.node, watchAll: this.opts.watchAllVms ?? false },
      {
        onChange: (vm) => {
          this.written.delete(`${vm.metadata.namespace}/${vm.metadata.name}`);
          this.kick();
        },
        ...(this.opts.received ? { onReceived: this.opts.received } : {}),
      },
    );
    this.timer = setInterval(() => this.kick(), this.opts.intervalMs ?? 5_000);
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.kickTimer);
    await this.running;
    await this.watch?.release();
  }

  /** The VirtualMachine of a copy on this host, as last seen (the newest of what we wrote, watched or fetched). */
  current(vmId: string): VirtualMachine | undefined {
    const ref = parseVmId(vmId);
    if (!ref) return undefined;
    const key = `${ref.namespace}/${ref.name}`;
    const seen = [this.written.get(key), this.watch?.get(ref.namespace, ref.name)].filter((v) => v !== undefined);
    const fetched = this.outside.get(key);
    if (!seen.length) return fetched?.vm;
    if (fetched?.vm) seen.push(fetched.vm);
    return seen.reduce((a, b) => (rvOf(b) > rvOf(a) ? b : a));
  }

  /** Like `current`, but a VM outside the watched view is fetched now (decisions that remove things). */
  async fresh(vmId: string): Promise<VirtualMachine | undefined> {
    const ref = parseVmId(vmId);
    const watch = this.watch;
    if (!ref || !watch || watch.complete || watch.get(ref.namespace, ref.name)) return this.current(vmId);
    this.outside.set(`${ref.namespace}/${ref.name}`, { vm: await watch.fetch(ref.namespace, ref.name), at: Date.now() });
    return this.current(vmId);
  }

  /** Fetch the VMs of copies here that the watched view does not hold (and forget those of copies gone). */
  private async fetchOutside(watch: VirtualMachineWatchHandle, copies: VmInfo[]): Promise<void> {
    const wanted = new Set<string>();
    const due: { key: string; namespace: string; name: string }[] = [];
    const now = Date.now();
    for (const info of copies) {
      const ref = parseVmId(info.id)!;
      const key = `${ref.namespace}/${ref.name}`;
      if (watch.get(ref.namespace, ref.name)) continue;
      wanted.add(key);
      const last = this.outside.get(key);
      if (!last || now - last.at >= OUTSIDE_TTL_MS) due.push({ key, ...ref });
    }
    for (const key of [...this.outside.keys()]) if (!wanted.has(key)) this.outside.delete(key);
    await Promise.all(due.map(async (d) => this.outside.set(d.key, { vm: await watch.fetch(d.namespace, d.name), at: Date.now() })));
  }

  /** Report soon (coalesces bursts of kicks into one pass). */
  kick(): void {
    if (this.stopped || this.kickTimer) return;
    this.kickTimer = setTimeout(() => {
      this.kickTimer = undefined;
      void this.reportNow();
    }, 50);
  }

  /** One reporting pass; a pass asked for while one runs follows it. */
  reportNow(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.pass()
      .catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'VM status report failed'))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.reportNow();
        }
      });
    return this.running;
  }

  private async pass(): Promise<void> {
    const watch = this.watch;
    if (!watch?.isSynced) return;
    const listed = await this.opts.driver.list().catch((err: unknown) => {
      this.opts.listFailed?.();
      throw err;
    });
    const copies = listed.filter((info) => parseVmId(info.id));
    if (!watch.complete) await this.fetchOutside(watch, copies);
    const now = new Date();
    this.heartbeats.keepOnly(copies.map((c) => c.id));
    for (const info of copies) {
      const standingSince = this.heartbeats.standingSince(info, now);
      const vm = this.current(info.id);
      const changes = vm && statusChanges(vm, info, this.opts.node);
      // The guest is this host's to report where the rest of the status is (or already says so).
      const speaks = !!vm && (changes !== undefined || (info.uid === vm.metadata.uid && vm.status?.nodeName === this.opts.node && reportsHere(info)));
      const guest = speaks ? guestChanges(vm, info, now, standingSince) : undefined;
      if (vm && (changes || guest)) await this.patch(`${vm.metadata.namespace}/${vm.metadata.name}`, vm, { ...changes, ...guest });
    }
    await this.opts.leftovers?.sweep(copies, (info) => this.current(info.id));
  }

  private async patch(key: string, vm: VirtualMachine, changes: StatusPatch): Promise<void> {
    const { namespace, name, resourceVersion } = vm.metadata;
    try {
      // resourceVersion makes this conditional: if another writer (the VM's new host, the
      // controller) got there first, we get a 409 and decide again from fresh data.
      const updated = await this.opts.api.mergePatch<VirtualMachine>(vmovePath(PLURALS.VirtualMachine, { namespace: namespace!, name: name!, subresource: 'status' }), {
        metadata: { resourceVersion },
        status: changes,
      });
      this.written.set(key, updated);
      this.log.debug({ vm: key, changes }, 'VM status reported');
    } catch (err) {
      if (isConflict(err) || isNotFound(err)) {
        const code = (err as ApiError).status;
        this.written.delete(key);
        // A VM outside the watched view brings no watch event: fetch it again at the next pass.
        if (this.outside.delete(key)) this.kick();
        // The watch delivers the newer object and kicks the next pass.
        this.log.debug({ vm: key, code }, 'VM changed meanwhile; deciding again with fresh data');
        return;
      }
      throw err;
    }
  }
}
