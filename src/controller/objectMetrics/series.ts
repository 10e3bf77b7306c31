// The cluster's state as Prometheus series, computed from the informers' caches: moves in flight,
// moves by phase, evacuations, agents and VMs (docs/metrics.md). Pure: objects in, series out; a
// series exists exactly while the object it describes does (a move: while in flight), so what
// the exporter removes is whatever this stops returning.
import type { HistoryEntry, HostEvacuation, MoveRequest, VirtualMachine } from '../../api/types';
import { moveRecordOf } from '../../machines/record';
import { isTerminal } from '../../machines/vocabulary';
import type { AgentInfo } from '../clusterView';

export type Labels = Record<string, string>;

export interface Series {
  metric: GaugeName;
  labels: Labels;
  value: number;
}

export const MOVE_GAUGES = [
  'vmove_move_memory_processed_bytes',
  'vmove_move_memory_remaining_bytes',
  'vmove_move_memory_total_bytes',
  'vmove_move_disk_processed_bytes',
  'vmove_move_disk_remaining_bytes',
  'vmove_move_disk_total_bytes',
  'vmove_move_dirty_memory_rate_bytes',
  'vmove_move_memory_transfer_rate_bytes',
  'vmove_move_disk_transfer_rate_bytes',
  'vmove_move_iteration',
  'vmove_move_rung',
  'vmove_move_attempt',
  'vmove_move_start_time_seconds',
  'vmove_move_phase_start_time_seconds',
  'vmove_move_phase_timeout_seconds',
] as const;

export const CLUSTER_GAUGES = ['vmove_moves', 'vmove_evacuation_vms', 'vmove_evacuation_phase', 'vmove_evacuation_last_progress_time_seconds', 'vmove_agent_up', 'vmove_vms'] as const;

export type GaugeName = (typeof MOVE_GAUGES)[number] | (typeof CLUSTER_GAUGES)[number];

/** Labels each gauge carries, in order (prom-client wants them declared). */
export const GAUGE_LABELS: Record<GaugeName, readonly string[]> = {
  ...(Object.fromEntries(MOVE_GAUGES.map((m) => [m, ['namespace', 'moverequest', 'vm', 'move_type', 'source', 'target']])) as Record<(typeof MOVE_GAUGES)[number], string[]>),
  vmove_move_phase_start_time_seconds: ['namespace', 'moverequest', 'vm', 'move_type', 'source', 'target', 'phase'],
  vmove_move_phase_timeout_seconds: ['namespace', 'moverequest', 'vm', 'move_type', 'source', 'target', 'phase'],
  vmove_moves: ['phase', 'move_type'],
  vmove_evacuation_vms: ['hostevacuation', 'node', 'state'],
  vmove_evacuation_phase: ['hostevacuation', 'node', 'phase'],
  vmove_evacuation_last_progress_time_seconds: ['hostevacuation', 'node'],
  vmove_agent_up: ['node'],
  vmove_vms: ['node', 'phase'],
};

/** Bytes per second of the last progress sample, as the exporter measured them between two status versions. */
export interface TransferRates {
  memoryBytesPerSecond: number;
  diskBytesPerSecond: number;
}

const GiB = 1024 ** 3;
/** Phases whose step the completion timeout bounds (stepWatch.ts timeoutReason). */
const TIMED_PHASES = new Set(['Migrating', 'CopyingDisks']);

const seconds = (iso: string | undefined): number | undefined => (iso ? Date.parse(iso) / 1000 : undefined);

/** A move between leaving Pending and its end: the moves the per-move series describe. */
export const inFlight = (mr: MoveRequest): boolean => !!mr.status?.phase && mr.status.phase !== 'Pending' && !isTerminal(mr.status.phase);

/** When the current phase was entered: the first of the last entries of that phase and attempt (notes add lines within a phase). */
export function phaseEnteredAt(history: HistoryEntry[] | undefined, phase: string): string | undefined {
  const h = history ?? [];
  let i = h.length - 1;
  if (i < 0 || h[i]!.phase !== phase) return undefined;
  while (i > 0 && h[i - 1]!.phase === phase && h[i - 1]!.attempt === h[i]!.attempt) i--;
  return h[i]!.startedAt;
}

/** The series of one move in flight (none otherwise). */
export function moveSeries(mr: MoveRequest, rates?: TransferRates): Series[] {
  if (!inFlight(mr)) return [];
  const st = mr.status!;
  const phase = st.phase!;
  const record = moveRecordOf(st);
  const ctx = record?.context;
  const labels: Labels = {
    namespace: mr.metadata.namespace ?? '',
    moverequest: mr.metadata.name ?? '',
    vm: mr.spec.vmName,
    move_type: st.moveType ?? '',
    source: st.sourceNode ?? '',
    target: st.targetNode ?? '',
  };
  const p = st.progress ?? {};
  const out: Series[] = [];
  const put = (metric: GaugeName, value: number | undefined, extra: Labels = {}) => {
    if (value !== undefined && Number.isFinite(value)) out.push({ metric, labels: { ...labels, ...extra }, value });
  };
  put('vmove_move_memory_processed_bytes', p.memoryProcessedBytes ?? 0);
  put('vmove_move_memory_remaining_bytes', p.memoryRemainingBytes ?? 0);
  put('vmove_move_memory_total_bytes', p.memoryTotalBytes ?? 0);
  put('vmove_move_disk_processed_bytes', p.diskProcessedBytes ?? 0);
  put('vmove_move_disk_remaining_bytes', p.diskRemainingBytes ?? 0);
  put('vmove_move_disk_total_bytes', p.diskTotalBytes ?? 0);
  put('vmove_move_dirty_memory_rate_bytes', p.dirtyRateBytesPerSecond ?? 0);
  put('vmove_move_memory_transfer_rate_bytes', rates?.memoryBytesPerSecond ?? 0);
  put('vmove_move_disk_transfer_rate_bytes', rates?.diskBytesPerSecond ?? 0);
  put('vmove_move_iteration', p.iteration ?? 0);
  put('vmove_move_rung', ctx?.rung ?? 0);
  put('vmove_move_attempt', st.attempt ?? 1);
  put('vmove_move_start_time_seconds', seconds(st.startTime));
  put('vmove_move_phase_start_time_seconds', seconds(phaseEnteredAt(st.history, phase)), { phase });
  if (ctx && TIMED_PHASES.has(phase)) put('vmove_move_phase_timeout_seconds', Math.max(1, ctx.bytesToMove / GiB) * ctx.policy.completionTimeoutPerGiB, { phase });
  return out;
}

/** MoveRequests that exist, by phase and move type. */
export function movesByPhase(moves: MoveRequest[]): Series[] {
  const counts = new Map<string, Series>();
  for (const mr of moves) {
    const labels = { phase: mr.status?.phase ?? 'Pending', move_type: mr.status?.moveType ?? '' };
    const k = `${labels.phase}/${labels.move_type}`;
    const s = counts.get(k) ?? { metric: 'vmove_moves', labels, value: 0 };
    s.value++;
    counts.set(k, s);
  }
  return [...counts.values()];
}

export const EVACUATION_OF_LABEL = 'vmove.dev/evacuation';

/**
 * When a VM of the evacuation last finished moving for good: its latest move (the one status.moves
 * shows) Succeeded or Failed; before any did, the evacuation's start.
 */
export function lastProgressAt(ev: HostEvacuation, owned: MoveRequest[]): string | undefined {
  const latest = new Set((ev.status?.moves ?? []).map((m) => `${m.namespace}/${m.name}`));
  const ends = owned
    .filter((m) => latest.has(`${m.metadata.namespace}/${m.metadata.name}`) && (m.status?.phase === 'Succeeded' || m.status?.phase === 'Failed'))
    .map((m) => m.status?.completionTime)
    .filter((t): t is string => !!t)
    .sort();
  return ends[ends.length - 1] ?? ev.status?.startTime;
}

/** The series of one HostEvacuation (it exists until deleted). */
export function evacuationSeries(ev: HostEvacuation, owned: MoveRequest[]): Series[] {
  const labels = { hostevacuation: ev.metadata.name ?? '', node: ev.spec.nodeName };
  const st = ev.status ?? {};
  const out: Series[] = [
    { metric: 'vmove_evacuation_vms', labels: { ...labels, state: 'pending' }, value: st.pending ?? 0 },
    { metric: 'vmove_evacuation_vms', labels: { ...labels, state: 'in_progress' }, value: st.inProgress ?? 0 },
    { metric: 'vmove_evacuation_vms', labels: { ...labels, state: 'succeeded' }, value: st.succeeded ?? 0 },
    { metric: 'vmove_evacuation_vms', labels: { ...labels, state: 'failed' }, value: st.failed ?? 0 },
    { metric: 'vmove_evacuation_phase', labels: { ...labels, phase: st.phase ?? 'Pending' }, value: 1 },
  ];
  const at = seconds(lastProgressAt(ev, owned));
  if (at !== undefined) out.push({ metric: 'vmove_evacuation_last_progress_time_seconds', labels, value: at });
  return out;
}

export function agentSeries(agents: AgentInfo[]): Series[] {
  return agents.map((a) => ({ metric: 'vmove_agent_up', labels: { node: a.node }, value: a.alive ? 1 : 0 }));
}

/** VirtualMachines by host (as reported, or as placed before the host reported it) and phase. */
export function vmSeries(vms: VirtualMachine[]): Series[] {
  const counts = new Map<string, Series>();
  for (const vm of vms) {
    const labels = { node: vm.status?.nodeName ?? vm.status?.scheduledNode ?? '', phase: vm.status?.phase ?? 'Pending' };
    const k = `${labels.node}/${labels.phase}`;
    const s = counts.get(k) ?? { metric: 'vmove_vms', labels, value: 0 };
    s.value++;
    counts.set(k, s);
  }
  return [...counts.values()];
}

export interface ClusterObjects {
  moves: MoveRequest[];
  evacuations: HostEvacuation[];
  vms: VirtualMachine[];
  agents: AgentInfo[];
  /** Per move UID: its last measured transfer rates. */
  rates?: ReadonlyMap<string, TransferRates>;
}

/** Every object series of the cluster. */
export function clusterSeries(o: ClusterObjects): Series[] {
  const owned = new Map<string, MoveRequest[]>();
  for (const m of o.moves) {
    const ev = m.metadata.labels?.[EVACUATION_OF_LABEL];
    if (!ev) continue;
    const list = owned.get(ev) ?? [];
    list.push(m);
    owned.set(ev, list);
  }
  return [
    ...o.moves.flatMap((m) => moveSeries(m, o.rates?.get(m.metadata.uid ?? ''))),
    ...movesByPhase(o.moves),
    ...o.evacuations.flatMap((e) => evacuationSeries(e, owned.get(e.metadata.name ?? '') ?? [])),
    ...agentSeries(o.agents),
    ...vmSeries(o.vms),
  ];
}
