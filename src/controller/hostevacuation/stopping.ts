// An evacuation asked to stop. Cancelled: its unfinished moves are cancelled (each rolls back, or
// finishes if the VM already runs on its target), then it ends Cancelled. Deleted: it deletes its
// moves, then lets go. Either way it lifts the cordon vmove made. Pure.
import { findCondition } from '../conditions';
import { isOpen, moveRef } from './nextMoves';
import { uncordon } from './nodeConditions';
import type { StatusDraft } from './statusDraft';
import { latestRows, plural } from './tally';
import type { EvacuationActions, EvacuationDecision, EvacuationFacts, EventNote } from './types';

export function cancelling(f: EvacuationFacts, d: StatusDraft, actions: EvacuationActions, events: EventNote[]): EvacuationDecision {
  const e = f.evacuation;
  const now = f.now.toISOString();
  const running = f.moves.filter(isOpen);
  for (const mr of running) if (!mr.spec.cancel) actions.cancel.push({ ...moveRef(mr), why: 'the evacuation was cancelled' });
  const moves = latestRows(f.moves);
  const moved = moves.filter((m) => m.phase === 'Succeeded').length;
  if (running.length) {
    const message = `cancelling: ${plural(running.length, 'move')} stop${running.length === 1 ? 's' : ''} (each rolls back, or finishes if the VM already runs on its target)`;
    d.set({ type: 'Progressing', status: 'True', reason: 'Cancelling', message });
    d.standing('Cancelling', { state: 'working', reason: 'Cancelling', message });
    if (findCondition(d.prev.conditions, 'Progressing')?.reason !== 'Cancelling') events.push({ type: 'Normal', reason: 'Cancelling', message });
    return { status: { ...d.prev, moves, inProgress: running.length, observedGeneration: e.metadata.generation, conditions: d.conditions, message }, actions, events, requeueAfterMs: 5_000 };
  }
  const cordonNote = uncordon(f, d, actions, events);
  const message = `cancelled: ${plural(moved, 'VM')} had been moved off ${e.spec.nodeName}; the others stay where they are${cordonNote ? `; ${cordonNote}` : ''}`;
  d.set({ type: 'Progressing', status: 'False', reason: 'Cancelled', message });
  d.set({ type: 'Ready', status: 'False', reason: 'Cancelled', message });
  d.standing('Cancelled', { state: 'stalled', reason: 'Cancelled', message });
  events.push({ type: 'Normal', reason: 'Cancelled', message });
  return {
    status: { ...d.prev, phase: 'Cancelled', moves, succeeded: moved, inProgress: 0, pending: 0, startTime: d.prev.startTime ?? now, completionTime: now, observedGeneration: e.metadata.generation, conditions: d.conditions, message },
    actions,
    events,
  };
}

export function deleting(f: EvacuationFacts, d: StatusDraft, actions: EvacuationActions, events: EventNote[]): EvacuationDecision {
  // Deleting a MoveRequest cancels it (its own finalizer waits for the rollback), so the
  // evacuation deletes what it owns and lets go once all of it is gone.
  for (const mr of f.moves) if (!mr.metadata.deletionTimestamp) actions.delete.push(moveRef(mr));
  if (f.moves.length) {
    const message = `deleting: waiting for ${plural(f.moves.length, 'MoveRequest')} of this evacuation to stop and go`;
    d.set({ type: 'Progressing', status: 'True', reason: 'Deleting', message });
    d.standing('Deleting', { state: 'working', reason: 'Deleting', message });
    return { status: { ...d.prev, conditions: d.conditions, message }, actions, events, requeueAfterMs: 2_000 };
  }
  const cordonNote = uncordon(f, d, actions, events);
  actions.release = true;
  return { status: { ...d.prev, conditions: d.conditions, ...(cordonNote ? { message: `deleted; ${cordonNote}` } : {}) }, actions, events };
}
