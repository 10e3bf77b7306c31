// One entry point to the four move machines: start one, restore one from `.status.machine`,
// feed it an event, and ask which agent step its state runs now. Pure.
import { initialTransition, transition, type AnyMachineSnapshot } from 'xstate';
import type { MovePhase, MoveType } from '../api/types';
import { coldMove } from './cold';
import { liveMove } from './live';
import type { MoveDefinition } from './moveDefinition';
import { rebuildMove } from './rebuild';
import { resizeInPlaceMove } from './resizeInPlace';
import type { PersistedMove } from './record';
import { stepName } from './steps';
import { COMMITTED_TAG, isTerminal, type MoveContext, type MoveEvent, type MoveInput, type Step } from './vocabulary';

const MOVES: Record<MoveType, MoveDefinition> = { Live: liveMove, Cold: coldMove, Rebuild: rebuildMove, ResizeInPlace: resizeInPlaceMove };

export const machineFor = (type: MoveType): MoveDefinition['machine'] => MOVES[type].machine;
/** The steps that undo what the attempt in `ctx` reached, as its rollback plans them. */
export const undoSteps = (ctx: MoveContext): Step[] => MOVES[ctx.moveType].undo(ctx);

export interface MoveState {
  readonly type: MoveType;
  readonly snapshot: AnyMachineSnapshot;
}

export interface Note {
  message: string;
  warning: boolean;
}

export function startMove(input: MoveInput): MoveState {
  const [snapshot] = initialTransition(machineFor(input.moveType), input);
  return { type: input.moveType, snapshot };
}

export function restoreMove(p: PersistedMove): MoveState {
  const snapshot = machineFor(p.type).resolveState({ value: p.state, context: p.context } as never);
  return { type: p.type, snapshot };
}

export function persistMove(m: MoveState): PersistedMove {
  return { type: m.type, state: phaseOf(m), context: contextOf(m) };
}

/** Feed one event; answers the new state and the notes the transition asks to record. */
export function advance(m: MoveState, event: MoveEvent): { state: MoveState; notes: Note[] } {
  const [snapshot, actions] = transition(machineFor(m.type), m.snapshot as never, event);
  const notes = actions
    .filter((a) => a.type === 'note')
    .map((a) => a.params as { message: string; warning?: boolean })
    .filter((p) => p.message !== '')
    .map((p) => ({ message: p.message, warning: p.warning ?? false }));
  return { state: { type: m.type, snapshot }, notes };
}

export const phaseOf = (m: MoveState): MovePhase => m.snapshot.value as MovePhase;
export const contextOf = (m: MoveState): MoveContext => m.snapshot.context as MoveContext;
export const isDone = (m: MoveState): boolean => isTerminal(phaseOf(m));
export const isCommitted = (m: MoveState): boolean => m.snapshot.hasTag(COMMITTED_TAG);

/** The agent step the current state runs, with its key (`<attempt>.<step>`, unique within the move); none for waiting and terminal states. */
export function currentStep(m: MoveState): (Step & { key: string }) | undefined {
  const phase = phaseOf(m);
  const ctx = contextOf(m);
  const step = phase === 'RollingBack' ? ctx.rollback?.steps[ctx.rollback.index] : MOVES[m.type].step(phase, ctx);
  return step ? { ...step, key: stepName(phase, ctx) } : undefined;
}

export * from './vocabulary';
export { moveRecordOf, type PersistedMove } from './record';
export { MOVE_TRAITS, traitsOf, type MoveTraits } from './traits';
export { ladder, rungAt } from './ladder';
