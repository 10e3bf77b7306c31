// How the transfer streams of a run were used, read from the moves' status.history: the seconds
// bytes were on the wire, the seconds a move held a stream without moving bytes (its fixed steps),
// and the seconds no move held the stream. A move holds one from Scheduling until its bytes are
// across (Verifying) or it ends. Pure.
import type { HistoryEntry, MovePhase } from '../api/types';
import { bytesAcross, isTerminal } from '../machines/vocabulary';

/** The phases in which a move's bytes cross the link. */
export const TRANSFER_PHASES: readonly MovePhase[] = ['CopyingDisks', 'Migrating', 'SwitchingOver'];

export interface StreamUse {
  /** streams × the run's length: what the limits allowed. */
  capacitySeconds: number;
  /** Bytes on the wire. */
  transferSeconds: number;
  /** A move held the stream but moved no bytes: before its bytes, and after them (a rollback, a resize). */
  heldBeforeSeconds: number;
  heldAfterSeconds: number;
  /** No move held the slot. */
  unheldSeconds: number;
}

const seconds = (from: string, to: string | undefined, end: number): number => Math.max(0, ((to ? Date.parse(to) : end) - Date.parse(from)) / 1000);

export function streamUse(histories: HistoryEntry[][], streams: number, runMs: { start: number; end: number }): StreamUse {
  let transfer = 0;
  let before = 0;
  let after = 0;
  let held = 0;
  for (const h of histories) {
    const from = h.find((e) => e.phase === 'Scheduling');
    if (!from) continue;
    const to = h.find((e) => bytesAcross(e.phase) || isTerminal(e.phase));
    const moving = h.filter((e) => TRANSFER_PHASES.includes(e.phase) && (!to || Date.parse(e.startedAt) < Date.parse(to.startedAt)));
    const wire = moving.reduce((s, e) => s + seconds(e.startedAt, e.endedAt, runMs.end), 0);
    const all = seconds(from.startedAt, to?.startedAt, runMs.end);
    const first = moving[0];
    const last = moving[moving.length - 1];
    const lead = first ? seconds(from.startedAt, first.startedAt, runMs.end) : all;
    transfer += wire;
    held += all;
    before += lead;
    after += last ? Math.max(0, all - lead - wire) : 0;
  }
  const capacity = (streams * (runMs.end - runMs.start)) / 1000;
  return { capacitySeconds: capacity, transferSeconds: transfer, heldBeforeSeconds: before, heldAfterSeconds: after, unheldSeconds: Math.max(0, capacity - held) };
}
