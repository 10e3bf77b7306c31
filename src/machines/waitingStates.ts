// The states in which a move waits for the controller — to be let start (Pending), to be placed
// (Scheduling) — and the ends every move shares. Nothing has been touched in the waiting states,
// so a cancel or a rejection there ends the move at once.
import type { MovePhase } from '../api/types';
import { note, type MoveStateConfig } from './moveSetup';

const rejected = () => ({ target: 'Failed', actions: ['recordRejection', note((ctx) => ctx.failure ?? 'rejected', true)] }) as const;
const cancelledBeforeStart = () => ({ target: 'Cancelled', actions: ['recordCancel', note('cancelled before the move started; nothing was touched')] }) as const;

/** A live move's stream must be TLS unless its policy said plaintext; the history says which was asked. */
const streamNote = (moveType: string, insecure: boolean | undefined): string =>
  moveType !== 'Live' ? '' : insecure ? '; migration stream: plaintext, as spec.policy.insecureMigration (or the controller\'s --insecure-migration) asks' : '; migration stream: TLS required';

/** Waiting for the controller to let the move start: its VM is free and the limits allow it. */
export const pendingState = (): MoveStateConfig => ({
  on: {
    START: { guard: 'mayStart', target: 'Scheduling', actions: 'recordSourceReachability' },
    REJECTED: rejected(),
    CANCEL: cancelledBeforeStart(),
  },
});

/** Choosing (or confirming) the target host; the controller answers PLACED or REJECTED. */
export const schedulingState = (next: MovePhase): MoveStateConfig => ({
  on: {
    PLACED: { target: next, actions: ['placeOnTarget', note((ctx) => `placed on ${ctx.targetNode}${streamNote(ctx.moveType, ctx.policy.insecureMigration)}`)] },
    REJECTED: rejected(),
    CANCEL: cancelledBeforeStart(),
  },
});

export const finalStates = {
  Succeeded: { type: 'final' },
  Failed: { type: 'final' },
  Cancelled: { type: 'final' },
} as const satisfies Record<string, MoveStateConfig>;
