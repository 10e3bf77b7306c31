// `kubectl vmove history MOVE`: status.history as a table, each entry with how long it lasted
// (an entry still open: how long so far, marked "+"). Pure: `nowMs` is handed in.
import type { HistoryEntry, MoveRequest } from '../api/types';
import { span } from './format';

export function historyTable(mr: MoveRequest, nowMs: number): string[] {
  const history: HistoryEntry[] = mr.status?.history ?? [];
  const head = `MoveRequest ${mr.metadata.namespace}/${mr.metadata.name} (VM ${mr.spec.vmName}): ${mr.status?.phase ?? 'Pending'}${mr.status?.moveType ? `, ${mr.status.moveType}` : ''}${mr.status?.sourceNode ? ` ${mr.status.sourceNode} → ${mr.status.targetNode ?? '?'}` : ''}`;
  if (!history.length) return [head, '', 'no history yet'];
  const rows = [
    ['PHASE', 'ATTEMPT', 'STARTED', 'DURATION', 'MESSAGE'],
    ...history.map((h) => [h.phase, String(h.attempt), h.startedAt, h.endedAt ? span(h.startedAt, Date.parse(h.endedAt)) : `${span(h.startedAt, nowMs)}+`, h.message ?? '']),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd());
  const start = mr.status?.startTime ?? history[0]!.startedAt;
  const end = mr.status?.completionTime;
  const total = end ? `total ${span(start, Date.parse(end))}` : `running for ${span(start, nowMs)}`;
  return [head, '', ...lines, '', total];
}
