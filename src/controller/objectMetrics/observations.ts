// What one version of a MoveRequest shows happened — phases entered, the end, the downtime, a
// rollback, a retry, the VM moved — as counter and histogram observations, each with a key that
// names the event (a history entry, an attempt). The exporter applies an observation once per key,
// so resyncs, repeated watch events and a new leader reading old history never count twice. Pure.
import type { HistoryEntry, MoveRequest } from '../../api/types';
import { moveRecordOf } from '../../machines/record';
import { isTerminal, type RollbackCause } from '../../machines/vocabulary';
import type { Labels } from './series';

export type Observation =
  | { key: string; kind: 'phaseEntered'; labels: { move_type: string; phase: string }; seconds: number }
  | { key: string; kind: 'finished'; labels: { move_type: string; phase: string }; seconds?: number }
  | { key: string; kind: 'downtime'; labels: { move_type: string }; seconds: number }
  | { key: string; kind: 'rollback'; labels: { move_type: string; reason: RollbackCause } }
  | { key: string; kind: 'retry'; labels: { move_type: string } }
  | { key: string; kind: 'vmMoved'; labels: { namespace: string; vm: string } }
  | { key: string; kind: 'evacuationRetry'; labels: Labels };

export const EVACUATION_ATTEMPT_LABEL = 'vmove.dev/evacuation-attempt';

const at = (iso: string | undefined): number | undefined => (iso ? Date.parse(iso) / 1000 : undefined);

/** Entries that enter a phase (the lines a note adds within the same phase and attempt do not). */
function entered(history: HistoryEntry[]): HistoryEntry[] {
  return history.filter((h, i) => i === 0 || history[i - 1]!.phase !== h.phase || history[i - 1]!.attempt !== h.attempt);
}

/**
 * How long the guest did not run in a Succeeded move: a live move's final pause as the hypervisor
 * reported it; otherwise from the source's stop (the end of the last attempt's StoppingSource, or
 * that attempt's start when the source was lost and never stopped) to the target's start (the end
 * of SwitchingOver); 0 for a hotplug resize; none when the VM was not running.
 */
export function downtimeOf(mr: MoveRequest): number | undefined {
  const ctx = moveRecordOf(mr.status)?.context;
  if (!ctx || mr.status?.phase !== 'Succeeded' || !ctx.vmRunning) return undefined;
  if (ctx.moveType === 'Live') return ctx.downtimeMs !== undefined ? ctx.downtimeMs / 1000 : undefined;
  if (ctx.variant === 'Hotplug') return 0;
  const last = (mr.status.history ?? []).filter((h) => h.attempt === ctx.attempt);
  const stopped = last.filter((h) => h.phase === 'StoppingSource').pop()?.endedAt ?? last.find((h) => h.phase !== 'Pending')?.startedAt;
  const started = last.filter((h) => h.phase === 'SwitchingOver').pop()?.endedAt;
  const from = at(stopped);
  const to = at(started);
  return from !== undefined && to !== undefined ? Math.max(0, to - from) : undefined;
}

export function observationsOf(mr: MoveRequest): Observation[] {
  const st = mr.status ?? {};
  const history = st.history ?? [];
  const move_type = st.moveType ?? '';
  const out: Observation[] = [];
  const created = at(mr.metadata.creationTimestamp);
  for (const h of entered(history)) {
    const t = at(h.startedAt);
    if (created !== undefined && t !== undefined) {
      out.push({ key: `entered/${h.phase}/${h.attempt}/${h.startedAt}`, kind: 'phaseEntered', labels: { move_type, phase: h.phase }, seconds: Math.max(0, t - created) });
    }
  }
  const ctx = moveRecordOf(st)?.context;
  const attempts = new Set(history.map((h) => h.attempt));
  for (const a of attempts) {
    if (a > 1) out.push({ key: `retry/${a}`, kind: 'retry', labels: { move_type } });
    if (!history.some((h) => h.attempt === a && h.phase === 'RollingBack')) continue;
    // The plan (and its cause) is the current attempt's; an earlier attempt's rollback, seen only
    // after it became a retry, was one a transient failure started.
    const cause: RollbackCause = ctx?.attempt === a && ctx.rollback?.cause ? ctx.rollback.cause : st.phase === 'Cancelled' && ctx?.attempt === a ? 'Cancelled' : 'StepFailed';
    out.push({ key: `rollback/${a}`, kind: 'rollback', labels: { move_type, reason: cause } });
  }
  if (st.startTime) out.push({ key: 'started', kind: 'vmMoved', labels: { namespace: mr.metadata.namespace ?? '', vm: mr.spec.vmName } });
  if (st.phase && isTerminal(st.phase)) {
    const start = at(st.startTime);
    const end = at(st.completionTime);
    out.push({ key: 'finished', kind: 'finished', labels: { move_type, phase: st.phase }, ...(start !== undefined && end !== undefined ? { seconds: Math.max(0, end - start) } : {}) });
    const down = downtimeOf(mr);
    if (down !== undefined) out.push({ key: 'downtime', kind: 'downtime', labels: { move_type }, seconds: down });
  }
  if (Number(mr.metadata.labels?.[EVACUATION_ATTEMPT_LABEL] ?? 1) > 1) out.push({ key: 'evacuationRetry', kind: 'evacuationRetry', labels: {} });
  return out;
}
