// The states in which a move waits for the controller — to be let start (Pending), to be placed
// (Scheduling) — and the ends every move shares. Nothing has been touched in the waiting states,
// so a cancel or a rejection there ends the move at once.
import type { MovePhase } from '../api/types';
import { note, type MoveStateConfig } from './moveSetup';
import { VERIFY_WINDOW_MS, type GuestBaseline, type MoveContext } from './vocabulary';

const rejected = () => ({ target: 'Failed', actions: ['recordRejection', note((ctx) => ctx.failure ?? 'rejected', true)] }) as const;
const cancelledBeforeStart = () => ({ target: 'Cancelled', actions: ['recordCancel', note('cancelled before the move started; nothing was touched')] }) as const;

/** A live move's stream must be TLS unless its policy said plaintext; the history says which was asked. */
const streamNote = (moveType: string, insecure: boolean | undefined): string =>
  moveType !== 'Live' ? '' : insecure ? '; migration stream: plaintext, as spec.policy.insecureMigration (or the controller\'s --insecure-migration) asks' : '; migration stream: TLS required';

const seconds = (ms: number) => Math.round(ms / 1000);

/** What the source showed of the guest, and what the target will be held to: the start's line in history. */
export function baselineText(ctx: Pick<MoveContext, 'sourceNode'>, g: GuestBaseline): string {
  const src = ctx.sourceNode;
  const waited = g.waitedSeconds !== undefined ? `the move waited ${g.waitedSeconds} s for it to boot; ` : '';
  if (g.state === 'Ready') {
    const hb = g.heartbeat !== undefined ? ` (heartbeat ${g.heartbeat}${g.heartbeatTime ? ` at ${g.heartbeatTime}` : ''})` : '';
    return `${waited}the guest on ${src} is ready${hb}: after the switch-over it must heartbeat on the target past its last heartbeat on the source within ${seconds(VERIFY_WINDOW_MS.afterLiveMigration)} s`;
  }
  const what = g.state === 'Unknown' ? `${src} cannot see the guest (${g.reason})` : g.reason === 'Booting' ? `the guest on ${src} is still booting` : `the guest on ${src} is not ready (${g.reason})`;
  return `${waited}${what}: after the switch-over the target is verified by what can be seen (the VM running, its console output advancing, or a first heartbeat) within ${seconds(VERIFY_WINDOW_MS.afterBoot)} s, not by a heartbeat the source never showed`;
}

/** Waiting for the controller to let the move start: its VM is free and the limits allow it. */
export const pendingState = (): MoveStateConfig => ({
  on: {
    START: {
      guard: 'mayStart',
      target: 'Scheduling',
      // A live move of a running VM says what the source showed of the guest (else no line).
      actions: ['recordSourceReachability', 'recordSourceGuest', note((ctx) => (ctx.sourceGuest ? baselineText(ctx, ctx.sourceGuest) : ''))],
    },
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
