// The one reader of `MoveRequest.status.machine`: what a move's machine persisted, typed. Every
// part of the controller that needs the move's own memory (its type, state, target, resources,
// attempts) reads it through here instead of parsing the opaque field its own way. Pure.
import type { MovePhase, MoveRequestStatus, MoveType } from '../api/types';
import { MOVE_TRAITS } from './traits';
import type { MoveContext } from './vocabulary';

/** What `.status.machine` holds: enough to rebuild the machine's snapshot exactly. */
export interface PersistedMove {
  type: MoveType;
  state: MovePhase;
  context: MoveContext;
}

/** The persisted machine of a MoveRequest; undefined before its machine exists (or if the field is not one). */
export function moveRecordOf(status: Pick<MoveRequestStatus, 'machine'> | undefined): PersistedMove | undefined {
  const m = status?.machine as Partial<PersistedMove> | undefined;
  if (!m || typeof m.type !== 'string' || !Object.hasOwn(MOVE_TRAITS, m.type)) return undefined;
  if (typeof m.state !== 'string' || !m.context || typeof m.context !== 'object') return undefined;
  return m as PersistedMove;
}
