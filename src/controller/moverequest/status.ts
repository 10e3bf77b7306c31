// MoveRequest.status from the machine: the phase, the story (history), progress, conditions.
// Pure: the reconciler hands in what happened, this decides what the user reads.
import type { HistoryEntry, MovePhase, MoveProgress, MoveRequestStatus, Placement } from '../../api/types';
import { contextOf, isDone, persistMove, phaseOf, type MoveState, type Note } from '../../machines';
import { setCondition, standingConditions, type ConditionInput, type Standing } from '../conditions';

const MAX_HISTORY = 60;
const CANCELLED_MESSAGE = 'cancelled; the VM is where it was';

/** What a move under way is doing, for the Reconciling condition: "Migrating: 15% sent, node-a → node-b". */
function underWay(phase: MovePhase, source: string | undefined, target: string | undefined, progress: MoveProgress | undefined): string {
  const route = source ? `${source} → ${target ?? 'a host not chosen yet'}` : '';
  const sent = progress?.percent !== undefined && progress.percent > 0 ? `${progress.percent}% sent` : '';
  const said = [sent, route].filter(Boolean).join(', ');
  return said ? `${phase}: ${said}` : `in ${phase}`;
}

export interface StatusInput {
  now: string;
  generation?: number;
  notes: Note[];
  progress?: MoveProgress;
  placement?: Placement;
  /** Why the move waits (Pending / Scheduling), shown as condition Progressing=False. */
  waiting?: { reason: string; message: string };
}

/** Whole-number progress, with percent over what is being transferred. */
export function progressFrom(p: MoveProgress): MoveProgress {
  const round = (n: number | undefined) => (n === undefined ? undefined : Math.max(0, Math.round(n)));
  const total = (p.memoryTotalBytes ?? 0) + (p.diskTotalBytes ?? 0);
  const done = (p.memoryProcessedBytes ?? 0) + (p.diskProcessedBytes ?? 0);
  const remaining = (p.memoryRemainingBytes ?? 0) + (p.diskRemainingBytes ?? 0);
  // Pre-copy resends dirtied pages, so "processed" can exceed the total: judge by what remains.
  const percent = total > 0 ? Math.min(99, Math.max(0, Math.round((100 * (total - Math.min(total, remaining))) / total))) : p.percent;
  return {
    memoryTotalBytes: round(p.memoryTotalBytes),
    memoryProcessedBytes: round(p.memoryProcessedBytes),
    memoryRemainingBytes: round(p.memoryRemainingBytes),
    diskTotalBytes: round(p.diskTotalBytes),
    diskProcessedBytes: round(p.diskProcessedBytes),
    diskRemainingBytes: round(p.diskRemainingBytes),
    dirtyRateBytesPerSecond: round(p.dirtyRateBytesPerSecond),
    iteration: round(p.iteration),
    percent: done > 0 || total > 0 ? round(percent) : undefined,
  };
}

function withHistory(prev: HistoryEntry[] | undefined, phase: MovePhase, attempt: number, notes: Note[], now: string): HistoryEntry[] {
  const history = [...(prev ?? [])];
  const last = history[history.length - 1];
  const close = () => {
    const l = history[history.length - 1];
    if (l && !l.endedAt) history[history.length - 1] = { ...l, endedAt: now };
  };
  const terminal = phase === 'Succeeded' || phase === 'Failed' || phase === 'Cancelled';
  const messages = notes.map((n) => n.message);
  if (!last || last.phase !== phase || last.attempt !== attempt) {
    close();
    history.push({ phase, startedAt: now, attempt, ...(terminal ? { endedAt: now } : {}), ...(messages.length ? { message: messages.join('; ') } : {}) });
  } else if (messages.length) {
    // Something worth telling within the same phase (a ladder rung, a retried step): a new line.
    close();
    history.push({ phase, startedAt: now, attempt, message: messages.join('; ') });
  }
  return history.length > MAX_HISTORY ? [history[0]!, ...history.slice(history.length - MAX_HISTORY + 1)] : history;
}

export function moveStatus(prev: MoveRequestStatus | undefined, m: MoveState, i: StatusInput): MoveRequestStatus {
  const phase = phaseOf(m);
  const ctx = contextOf(m);
  const done = isDone(m);
  const started = phase !== 'Pending' || ctx.attempt > 1;
  let conditions = prev?.conditions;
  const set = (c: ConditionInput) => (conditions = setCondition(conditions, c, i.now, i.generation));
  const lastNote = i.notes[i.notes.length - 1]?.message;
  const message = phase === 'Failed' ? (ctx.failure ?? lastNote ?? prev?.message) : (lastNote ?? (i.waiting?.message || prev?.message));

  const progress = phase === 'Succeeded' ? { ...(i.progress ?? prev?.progress ?? {}), percent: 100 } : i.progress ? progressFrom(i.progress) : prev?.progress;

  set({ type: 'Ready', status: phase === 'Succeeded' ? 'True' : 'False', reason: phase, message: phase === 'Succeeded' ? `the VM runs on ${ctx.targetNode}` : `the move is ${phase}` });
  if (done) set({ type: 'Progressing', status: 'False', reason: phase, message: `the move ended ${phase}` });
  else if (i.waiting) set({ type: 'Progressing', status: 'False', reason: i.waiting.reason, message: i.waiting.message });
  else set({ type: 'Progressing', status: started ? 'True' : 'False', reason: phase, message: lastNote ?? `in ${phase}` });
  set({ type: 'Failed', status: phase === 'Failed' ? 'True' : 'False', reason: phase === 'Failed' ? 'MoveFailed' : 'NotFailed', message: phase === 'Failed' ? (ctx.failure ?? 'failed') : '' });
  const standing: Standing =
    phase === 'Succeeded'
      ? { state: 'done', reason: phase }
      : phase === 'Failed'
        ? { state: 'stalled', reason: 'MoveFailed', message: ctx.failure ?? 'failed' }
        : phase === 'Cancelled'
          ? { state: 'stalled', reason: 'Cancelled', message: CANCELLED_MESSAGE }
          : i.waiting
            ? { state: 'working', ...i.waiting }
            : { state: 'working', reason: phase, message: phase === 'RollingBack' ? `rolling back: ${ctx.rollback?.reason ?? 'the move failed'}` : underWay(phase, ctx.sourceNode, ctx.targetNode, progress) };
  for (const c of standingConditions(phase, standing)) set(c);
  if (ctx.rollback || (prev?.conditions ?? []).some((c) => c.type === 'RolledBack')) {
    const rolledBack = done && phase !== 'Succeeded' && !!ctx.rollback;
    set({ type: 'RolledBack', status: rolledBack ? 'True' : 'False', reason: rolledBack ? 'RolledBack' : phase === 'RollingBack' ? 'RollingBack' : 'NotRolledBack', message: ctx.rollback?.reason ?? '' });
  }
  if (ctx.cancelRequested) {
    set(
      ctx.cancelIgnored
        ? { type: 'Cancelled', status: 'False', reason: 'PastPointOfNoReturn', message: 'cancel arrived after the VM started on the target; the move completed instead' }
        : { type: 'Cancelled', status: phase === 'Cancelled' ? 'True' : 'False', reason: phase === 'Cancelled' ? 'Cancelled' : 'Cancelling', message: phase === 'Cancelled' ? CANCELLED_MESSAGE : 'rolling back' },
    );
  }

  return {
    phase,
    moveType: ctx.moveType,
    variant: ctx.variant,
    reason: ctx.reason,
    sourceNode: ctx.sourceNode,
    targetNode: ctx.targetNode,
    attempt: ctx.attempt,
    progress,
    history: withHistory(prev?.history, phase, ctx.attempt, i.notes, i.now),
    placement: i.placement ?? prev?.placement,
    startTime: prev?.startTime ?? (started ? i.now : undefined),
    completionTime: done ? (prev?.completionTime ?? i.now) : undefined,
    observedGeneration: i.generation,
    conditions,
    message,
    machine: persistMove(m) as unknown as Record<string, unknown>,
    // Fixed at intake; carried as they are.
    ...(prev?.effectivePolicy ? { policyRef: prev.policyRef ?? '', effectivePolicy: prev.effectivePolicy } : {}),
  };
}

/** Status of a request that ends before any machine starts (unknown VM, impossible request, cancelled early). */
export function endedWithoutMove(prev: MoveRequestStatus | undefined, phase: 'Failed' | 'Cancelled', reason: string, message: string, now: string, generation?: number): MoveRequestStatus {
  let conditions = setCondition(prev?.conditions, { type: 'Ready', status: 'False', reason, message }, now, generation);
  conditions = setCondition(conditions, { type: 'Progressing', status: 'False', reason, message }, now, generation);
  conditions = setCondition(conditions, { type: 'Failed', status: phase === 'Failed' ? 'True' : 'False', reason, message }, now, generation);
  for (const c of standingConditions(phase, { state: 'stalled', reason, message })) conditions = setCondition(conditions, c, now, generation);
  return {
    ...prev,
    phase,
    message,
    history: [...(prev?.history ?? []), { phase, startedAt: now, endedAt: now, attempt: prev?.attempt ?? 1, message }],
    completionTime: now,
    observedGeneration: generation,
    conditions,
  };
}

/** Status of a request waiting before its machine exists (VM busy or not placed yet). */
export function waitingWithoutMove(prev: MoveRequestStatus | undefined, reason: string, message: string, now: string, generation?: number): MoveRequestStatus {
  let conditions = setCondition(prev?.conditions, { type: 'Ready', status: 'False', reason: 'Pending', message: 'the move has not started' }, now, generation);
  conditions = setCondition(conditions, { type: 'Progressing', status: 'False', reason, message }, now, generation);
  for (const c of standingConditions('Pending', { state: 'working', reason, message })) conditions = setCondition(conditions, c, now, generation);
  return { ...prev, phase: 'Pending', message, observedGeneration: generation, conditions, history: prev?.history?.length ? prev.history : [{ phase: 'Pending', startedAt: now, attempt: 1, message }] };
}
