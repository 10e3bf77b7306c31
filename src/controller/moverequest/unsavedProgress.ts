// Progress the machine has judged but the controller has not written yet. Progress-only
// transitions are written at most every PROGRESS_WRITE_INTERVAL_MS, yet the convergence ladder
// judges every pre-copy pass, and on a fast link a pass takes a tenth of a second: rebuilt
// from `.status` at each poll, the machine would forget the passes in between and climb a rung
// only every few writes. This keeps the newer state in memory for as long as the object it was
// derived from is unchanged (same resourceVersion). Losing it (a restart, a new leader, any
// write to the object) loses only progress samples, never a decision: a climb, a phase change
// or a note is written before anything acts on it.
import type { MoveRequest } from '../../api/types';
import type { MoveState } from '../../machines';

export class UnsavedProgress {
  private readonly kept = new Map<string, { resourceVersion: string; move: MoveState }>();

  /** Hold `move`, a successor of what `mr.status.machine` records. */
  keep(mr: MoveRequest, move: MoveState): void {
    this.kept.set(mr.metadata.uid ?? '', { resourceVersion: mr.metadata.resourceVersion ?? '', move });
  }

  /** The held state, if `mr` is still the object it was derived from. */
  newerThan(mr: MoveRequest): MoveState | undefined {
    const k = this.kept.get(mr.metadata.uid ?? '');
    return k && k.resourceVersion === mr.metadata.resourceVersion ? k.move : undefined;
  }

  forget(mr: MoveRequest): void {
    this.kept.delete(mr.metadata.uid ?? '');
  }
}
