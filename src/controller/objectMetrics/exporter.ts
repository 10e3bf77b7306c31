// Keeps a prom-client registry in step with the cluster's objects while this replica leads: the
// gauges are set from series.ts on every scrape (series that stopped being returned are removed),
// and each MoveRequest version the informer delivers is turned into observations
// (observations.ts), applied once per key. A replica that stops leading removes every object series.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { MoveProgress, MoveRequest, VirtualMachine } from '../../api/types';
import { observationsOf, type Observation } from './observations';
import { CLUSTER_GAUGES, clusterSeries, GAUGE_LABELS, inFlight, MOVE_GAUGES, type ClusterObjects, type GaugeName, type Labels, type TransferRates } from './series';

const HELP: Record<GaugeName, string> = {
  vmove_move_memory_processed_bytes: 'Memory sent so far in this attempt of a move in flight',
  vmove_move_memory_remaining_bytes: 'Memory still to send',
  vmove_move_memory_total_bytes: "The guest's memory to move",
  vmove_move_disk_processed_bytes: 'Disk bytes copied',
  vmove_move_disk_remaining_bytes: 'Disk bytes still to copy',
  vmove_move_disk_total_bytes: 'Disk bytes to move (0 on shared storage)',
  vmove_move_dirty_memory_rate_bytes: 'Bytes per second the guest dirties',
  vmove_move_memory_transfer_rate_bytes: 'Memory bytes per second sent, over the last progress sample',
  vmove_move_disk_transfer_rate_bytes: 'Disk bytes per second copied, over the last progress sample',
  vmove_move_iteration: 'Pre-copy pass of a live move',
  vmove_move_rung: 'Position on the convergence ladder (0 = first rung)',
  vmove_move_attempt: 'Attempt of the move (1 until a retry)',
  vmove_move_start_time_seconds: 'Unix time the move left Pending',
  vmove_move_phase_start_time_seconds: 'Unix time the current phase was entered',
  vmove_move_phase_timeout_seconds: "The move's own limit for its current phase (completion timeout)",
  vmove_moves: 'MoveRequests by phase and move type',
  vmove_evacuation_vms: 'VMs of a HostEvacuation by state',
  vmove_evacuation_phase: "1 for the HostEvacuation's phase",
  vmove_evacuation_last_progress_time_seconds: 'Unix time a VM of the evacuation last finished moving (or its start)',
  vmove_agent_up: "1 while the node's agent holds an unexpired Lease",
  vmove_vms: 'VirtualMachines by node and phase',
};

interface Sample {
  memory: number;
  disk: number;
  at: number;
  rates: TransferRates;
}

/** The transfer rates after a new progress sample: bytes gained over the time since the last one that differed. */
export function nextSample(prev: Sample | undefined, p: MoveProgress | undefined, atMs: number): Sample {
  const memory = p?.memoryProcessedBytes ?? 0;
  const disk = p?.diskProcessedBytes ?? 0;
  if (!prev || memory < prev.memory || disk < prev.disk) return { memory, disk, at: atMs, rates: { memoryBytesPerSecond: 0, diskBytesPerSecond: 0 } };
  if (memory === prev.memory && disk === prev.disk) return prev;
  const span = (atMs - prev.at) / 1000;
  if (span <= 0) return { ...prev, memory, disk };
  return { memory, disk, at: atMs, rates: { memoryBytesPerSecond: Math.round((memory - prev.memory) / span), diskBytesPerSecond: Math.round((disk - prev.disk) / span) } };
}

const labelKey = (labels: Labels): string => JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));

export class ObjectMetrics {
  private readonly gauges: Record<GaugeName, Gauge<string>>;
  /** Per gauge: the label sets it holds now. */
  private readonly current = new Map<GaugeName, Map<string, Labels>>();
  private readonly phaseEntered: Histogram<'move_type' | 'phase'>;
  private readonly finished: Counter<'move_type' | 'phase'>;
  private readonly duration: Histogram<'move_type' | 'phase'>;
  private readonly downtime: Histogram<'move_type'>;
  private readonly rollbacks: Counter<'move_type' | 'reason'>;
  private readonly retries: Counter<'move_type'>;
  private readonly vmMoves: Counter<'namespace' | 'vm'>;
  private readonly evacuationRetries: Counter;
  /** Per MoveRequest UID: the observation keys already applied (or already there when this replica began leading). */
  private readonly seen = new Map<string, Set<string>>();
  private readonly samples = new Map<string, Sample>();
  private readonly vmSeries = new Map<string, Labels>();
  private leading = false;

  constructor(
    registry: Registry,
    private readonly objects: () => Omit<ClusterObjects, 'rates'>,
    private readonly now: () => number = Date.now,
  ) {
    const registers = [registry];
    this.gauges = Object.fromEntries(
      [...MOVE_GAUGES, ...CLUSTER_GAUGES].map((name) => [name, new Gauge({ name, help: HELP[name], labelNames: [...GAUGE_LABELS[name]], registers })]),
    ) as Record<GaugeName, Gauge<string>>;
    this.phaseEntered = new Histogram({
      name: 'vmove_move_phase_transition_time_from_creation_seconds',
      help: "Time from a MoveRequest's creation to entering a phase",
      labelNames: ['move_type', 'phase'],
      buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });
    this.finished = new Counter({ name: 'vmove_moves_finished_total', help: 'MoveRequests that ended, by move type and terminal phase', labelNames: ['move_type', 'phase'], registers });
    this.duration = new Histogram({
      name: 'vmove_move_duration_seconds',
      help: 'Time from a move leaving Pending to its end, by move type and terminal phase',
      labelNames: ['move_type', 'phase'],
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900],
      registers,
    });
    this.downtime = new Histogram({
      name: 'vmove_move_downtime_seconds',
      help: 'How long the guest did not run, per Succeeded move',
      labelNames: ['move_type'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.rollbacks = new Counter({ name: 'vmove_move_rollbacks_total', help: 'Rollbacks started, by move type and cause', labelNames: ['move_type', 'reason'], registers });
    this.retries = new Counter({ name: 'vmove_move_retries_total', help: 'New attempts after a rolled-back transient failure', labelNames: ['move_type'], registers });
    this.vmMoves = new Counter({ name: 'vmove_vm_moves_total', help: 'Moves of a VM that left Pending', labelNames: ['namespace', 'vm'], registers });
    this.evacuationRetries = new Counter({ name: 'vmove_evacuation_retries_total', help: 'New MoveRequests an evacuation made for a VM after a transient failure', registers });
  }

  /** Begin exporting: what the caches show already happened counts as seen (another replica, or an earlier process, observed it). */
  start(): void {
    for (const mr of this.objects().moves) this.seen.set(mr.metadata.uid ?? '', new Set(observationsOf(mr).map((o) => o.key)));
    this.leading = true;
    this.sync();
  }

  /** Stop exporting: every object series goes. */
  stop(): void {
    this.leading = false;
    for (const g of Object.values(this.gauges)) g.reset();
    this.current.clear();
    this.vmMoves.reset();
    this.vmSeries.clear();
    this.seen.clear();
    this.samples.clear();
  }

  /** A MoveRequest version the informer delivered. */
  moveChanged(mr: MoveRequest): void {
    if (!this.leading) return;
    const uid = mr.metadata.uid ?? '';
    if (inFlight(mr)) this.samples.set(uid, nextSample(this.samples.get(uid), mr.status?.progress, this.now()));
    else this.samples.delete(uid);
    const seen = this.seen.get(uid) ?? new Set<string>();
    this.seen.set(uid, seen);
    for (const o of observationsOf(mr)) {
      if (seen.has(o.key)) continue;
      seen.add(o.key);
      this.apply(o);
    }
  }

  moveDeleted(mr: MoveRequest): void {
    this.seen.delete(mr.metadata.uid ?? '');
    this.samples.delete(mr.metadata.uid ?? '');
  }

  /** A VirtualMachine seen: its move counter starts at 0, so increase() counts its first move. */
  vmChanged(vm: VirtualMachine): void {
    if (!this.leading) return;
    const labels = { namespace: vm.metadata.namespace ?? '', vm: vm.metadata.name ?? '' };
    const k = labelKey(labels);
    if (this.vmSeries.has(k)) return;
    this.vmSeries.set(k, labels);
    this.vmMoves.inc(labels, 0);
  }

  vmDeleted(vm: VirtualMachine): void {
    const labels = { namespace: vm.metadata.namespace ?? '', vm: vm.metadata.name ?? '' };
    if (this.vmSeries.delete(labelKey(labels))) this.vmMoves.remove(labels);
  }

  /** Set every object gauge from the caches (before a scrape); remove what no longer exists. */
  sync(): void {
    if (!this.leading) return;
    const o = this.objects();
    for (const vm of o.vms) this.vmChanged(vm);
    const vmKeys = new Set(o.vms.map((vm) => labelKey({ namespace: vm.metadata.namespace ?? '', vm: vm.metadata.name ?? '' })));
    for (const [k, labels] of this.vmSeries) {
      if (!vmKeys.has(k)) {
        this.vmSeries.delete(k);
        this.vmMoves.remove(labels);
      }
    }
    for (const mr of o.moves) this.moveChanged(mr);
    const uids = new Set(o.moves.map((m) => m.metadata.uid ?? ''));
    for (const uid of [...this.seen.keys()]) if (!uids.has(uid)) this.seen.delete(uid);
    for (const uid of [...this.samples.keys()]) if (!uids.has(uid)) this.samples.delete(uid);

    const next = new Map<GaugeName, Map<string, Labels>>();
    for (const s of clusterSeries({ ...o, rates: new Map([...this.samples].map(([uid, s]) => [uid, s.rates])) })) {
      this.gauges[s.metric].set(s.labels, s.value);
      const held = next.get(s.metric) ?? new Map<string, Labels>();
      held.set(labelKey(s.labels), s.labels);
      next.set(s.metric, held);
    }
    for (const [metric, held] of this.current) {
      const still = next.get(metric);
      for (const [k, labels] of held) if (!still?.has(k)) this.gauges[metric].remove(labels);
    }
    this.current.clear();
    for (const [metric, held] of next) this.current.set(metric, held);
  }

  private apply(o: Observation): void {
    switch (o.kind) {
      case 'phaseEntered':
        return this.phaseEntered.observe(o.labels, o.seconds);
      case 'finished':
        this.finished.inc(o.labels);
        if (o.seconds !== undefined) this.duration.observe(o.labels, o.seconds);
        return;
      case 'downtime':
        return this.downtime.observe(o.labels, o.seconds);
      case 'rollback':
        return this.rollbacks.inc(o.labels);
      case 'retry':
        return this.retries.inc(o.labels);
      case 'vmMoved':
        // Only VMs that exist get a series (a move of a deleted VM would leave one behind).
        if (this.vmSeries.has(labelKey(o.labels))) this.vmMoves.inc(o.labels);
        return;
      case 'evacuationRetry':
        return this.evacuationRetries.inc();
    }
  }
}
