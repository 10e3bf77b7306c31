// Rows into text: the redrawn table of a terminal, and one plain line per change for logs.
// Pure: the same rows always give the same lines.
import { bar, bytes, duration, fit, rate } from './format';
import type { MoveRow } from './moveRow';

const cell = {
  route: (r: MoveRow): string => `${r.source ?? '?'} → ${r.target ?? '?'}`,
  progress: (r: MoveRow): string => `${bar(r.percent)} ${r.percent === undefined ? '  -' : `${String(r.percent).padStart(3)}%`}`,
  bytes: (r: MoveRow): string => (r.totalBytes === undefined ? '-' : `${bytes(r.sentBytes ?? 0)} / ${bytes(r.totalBytes)}`),
  rates: (r: MoveRow): string => {
    if (r.dirtyBytesPerSecond === undefined && r.transferBytesPerSecond === undefined) return '-';
    const dirty = r.dirtyBytesPerSecond === undefined ? '-' : rate(r.dirtyBytesPerSecond);
    const xfer = r.transferBytesPerSecond === undefined ? '…' : rate(r.transferBytesPerSecond);
    return `${dirty} vs ${xfer}`;
  },
  iteration: (r: MoveRow): string => {
    const it = r.iteration === undefined ? '' : `#${r.iteration}`;
    const rung = r.rung ? `${r.rung.index + 1}/${r.rung.of} ${r.rung.name}` : '';
    return [it, rung].filter(Boolean).join(' ') || '-';
  },
  eta: (r: MoveRow): string => (r.eta === undefined ? (r.terminal ? '' : '-') : r.eta === 'never' ? 'not converging' : duration(r.eta)),
};

const HEADER = ['MOVE', 'VM', 'PHASE', 'ROUTE', 'PROGRESS', 'SENT / TOTAL', 'DIRTY vs XFER', 'ITER RUNG', 'ETA', 'DOWNTIME', 'NOTE'];

function cellsOf(r: MoveRow): string[] {
  const phase = r.attempt && r.attempt > 1 ? `${r.phase} (try ${r.attempt})` : r.phase;
  return [r.name, r.vm, phase, cell.route(r), cell.progress(r), cell.bytes(r), cell.rates(r), cell.iteration(r), cell.eta(r), r.downtime ?? '', r.note ?? ''];
}

/** The table a terminal shows: a summary line, a header and one row per move, each cut to `width`. */
export function screen(rows: MoveRow[], o: { width: number; title?: string }): string[] {
  const grid = [HEADER, ...rows.map(cellsOf)];
  const widths = HEADER.map((_, i) => Math.max(...grid.map((g) => g[i]!.length)));
  const line = (g: string[]): string => g.map((c, i) => (i < g.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd();
  return [summary(rows, o.title), '', ...grid.map((g) => fit(line(g), o.width))];
}

/** "2 moves: 1 in flight, 1 Succeeded" — and, once every move ended, how. */
export function summary(rows: MoveRow[], title?: string): string {
  const counts = new Map<string, number>();
  for (const r of rows) {
    const k = r.terminal ? r.phase : r.waiting ? 'waiting' : 'in flight';
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const parts = [...counts.entries()].map(([k, n]) => `${n} ${k}`).join(', ');
  const head = `${title ? `${title} — ` : ''}${rows.length} move${rows.length === 1 ? '' : 's'}${parts ? `: ${parts}` : ''}`;
  const ended = rows.length > 0 && rows.every((r) => r.terminal);
  return ended ? `${head}. All ended${rows.every((r) => r.phase === 'Succeeded') ? ': Succeeded' : ''}.` : head;
}

/** One line for logs (stdout not a terminal): the same facts, labelled, without the bar. */
export function plainLine(r: MoveRow): string {
  const parts = [`${r.name} ${r.phase}`, r.attempt && r.attempt > 1 ? `attempt=${r.attempt}` : '', `${r.source ?? '?'}->${r.target ?? '?'}`];
  if (r.percent !== undefined) parts.push(`${r.percent}%`);
  if (r.totalBytes !== undefined) parts.push(`sent=${bytes(r.sentBytes ?? 0)}/${bytes(r.totalBytes)}`);
  if (r.dirtyBytesPerSecond !== undefined) parts.push(`dirty=${rate(r.dirtyBytesPerSecond)}`);
  if (r.transferBytesPerSecond !== undefined) parts.push(`xfer=${rate(r.transferBytesPerSecond)}`);
  if (r.iteration !== undefined) parts.push(`iter=${r.iteration}`);
  if (r.rung) parts.push(`rung=${r.rung.index + 1}/${r.rung.of} (${r.rung.name})`);
  if (r.eta !== undefined) parts.push(`eta=${r.eta === 'never' ? 'not-converging' : duration(r.eta)}`);
  if (r.downtime && r.downtime !== '-') parts.push(`downtime ${r.downtime}`);
  if (r.note) parts.push(`| ${r.note}`);
  return parts.filter(Boolean).join(' ');
}
