// What one row of `kubectl vmove watch` says about one MoveRequest, from its status alone (and the
// transfer rate the watcher measured). Pure: tests feed it real-shaped status objects.
import type { MoveRequest } from '../api/types';
import { ladder } from '../machines/ladder';
import { moveRecordOf } from '../machines/record';

export interface MoveRow {
  /** namespace/name, or name when one namespace is watched. */
  name: string;
  vm: string;
  phase: string;
  terminal: boolean;
  moveType?: string;
  attempt?: number;
  source?: string;
  target?: string;
  percent?: number;
  sentBytes?: number;
  totalBytes?: number;
  dirtyBytesPerSecond?: number;
  transferBytesPerSecond?: number;
  iteration?: number;
  /** Position on the convergence ladder (live moves) and what the rung allows. */
  rung?: { index: number; of: number; name: string };
  /** Seconds until the data is across, when the rates tell; 'never' when the guest dirties faster than the link carries. */
  eta?: number | 'never';
  /** What the VM is expected to be without: "≤ 75 ms", "whole move (stopped)", "none". */
  downtime?: string;
  /** Why it waits (reason: message), how it ended, or what it does. */
  note?: string;
  /** True while the move waits for something other than its own work (limits, placement, the VM). */
  waiting: boolean;
}

export const TERMINAL_PHASES = ['Succeeded', 'Failed', 'Cancelled'];
/** Phases in which bytes cross the link (ETA and rates mean something). */
const TRANSFERRING = ['Migrating', 'CopyingDisks'];

export function moveRow(mr: MoveRequest, o: { transferBytesPerSecond?: number; qualify?: boolean } = {}): MoveRow {
  const s = mr.status ?? {};
  const phase = s.phase ?? 'Pending';
  const terminal = TERMINAL_PHASES.includes(phase);
  const p = s.progress ?? {};
  const record = moveRecordOf(s);
  const ctx = record?.context;
  const name = o.qualify ? `${mr.metadata.namespace}/${mr.metadata.name}` : (mr.metadata.name ?? '');
  const total = (p.memoryTotalBytes ?? 0) + (p.diskTotalBytes ?? 0);
  const sent = (p.memoryProcessedBytes ?? 0) + (p.diskProcessedBytes ?? 0);
  const remaining = (p.memoryRemainingBytes ?? 0) + (p.diskRemainingBytes ?? 0);
  const transferring = TRANSFERRING.includes(phase);
  const live = (s.moveType ?? ctx?.moveType) === 'Live';
  const xfer = transferring ? o.transferBytesPerSecond : undefined;
  const dirty = transferring && live ? p.dirtyRateBytesPerSecond : undefined;

  let rung: MoveRow['rung'];
  if (live && ctx?.policy) {
    const rungs = ladder(ctx.policy);
    const index = Math.min(ctx.rung ?? 0, rungs.length - 1);
    rung = { index, of: rungs.length, name: rungs[index]!.name };
  }

  let eta: MoveRow['eta'];
  if (transferring && xfer !== undefined && xfer > 0 && total > 0) {
    // Pre-copy gains only what the link carries beyond what the guest dirties meanwhile.
    const gain = xfer - (dirty ?? 0);
    eta = gain > 0 ? remaining / gain : 'never';
  }

  const progressing = s.conditions?.find((c) => c.type === 'Progressing');
  const waitingReason = !terminal && progressing?.status === 'False' && /^Waiting|Backoff|Source|VMNotReady/.test(progressing.reason) ? progressing : undefined;
  const note = terminal
    ? `${phase}${s.message ? `: ${s.message}` : ''}`
    : waitingReason
      ? `waiting (${waitingReason.reason}): ${waitingReason.message}${rejectedNote(mr)}`
      : s.message;

  const row: MoveRow = {
    name,
    vm: mr.spec.vmName,
    phase,
    terminal,
    waiting: !!waitingReason,
    ...(s.moveType ? { moveType: s.moveType } : {}),
    ...(s.attempt ? { attempt: s.attempt } : {}),
    ...(s.sourceNode ? { source: s.sourceNode } : {}),
    ...(s.targetNode ? { target: s.targetNode } : {}),
    ...(p.percent !== undefined ? { percent: p.percent } : phase === 'Succeeded' ? { percent: 100 } : {}),
    ...(total > 0 ? { sentBytes: sent, totalBytes: total } : {}),
    ...(dirty !== undefined ? { dirtyBytesPerSecond: dirty } : {}),
    ...(xfer !== undefined ? { transferBytesPerSecond: xfer } : {}),
    ...(live && p.iteration !== undefined ? { iteration: p.iteration } : {}),
    ...(rung ? { rung } : {}),
    ...(eta !== undefined ? { eta } : {}),
    ...(!terminal ? { downtime: expectedDowntime(mr) } : {}),
    ...(note ? { note } : {}),
  };
  return row;
}

/** What the VM goes without during the move, as far as its type and the current rung tell. */
function expectedDowntime(mr: MoveRequest): string {
  const s = mr.status ?? {};
  const ctx = moveRecordOf(s)?.context;
  const type = s.moveType ?? ctx?.moveType;
  if (!type) return '-';
  if (ctx && !ctx.vmRunning) return 'none (VM stopped)';
  switch (type) {
    case 'Live': {
      if (!ctx?.policy) return '-';
      const rungs = ladder(ctx.policy);
      const r = rungs[Math.min(ctx.rung ?? 0, rungs.length - 1)]!;
      return r.tuning.postCopy ? 'post-copy: brief pause' : `≤ ${r.tuning.maxDowntimeMs} ms`;
    }
    case 'ResizeInPlace':
      return s.variant === 'Hotplug' ? 'none (hotplug)' : 'a restart';
    default:
      return 'whole move (VM stopped)';
  }
}

/** The first hosts placement turned down, for a move waiting for capacity. */
function rejectedNote(mr: MoveRequest): string {
  const rejected = mr.status?.placement?.rejected ?? [];
  if (!rejected.length) return '';
  return `; rejected ${rejected.slice(0, 3).map((r) => `${r.nodeName} (${r.reason})`).join(', ')}${rejected.length > 3 ? ` and ${rejected.length - 3} more` : ''}`;
}

/** Exit code of a watch over these final rows: 0 only when every one Succeeded. */
export const exitCodeOf = (rows: Pick<MoveRow, 'phase'>[]): number => (rows.every((r) => r.phase === 'Succeeded') ? 0 : 1);
