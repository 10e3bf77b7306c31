// A move machine written as its story: the states it runs steps in, in order, each with its
// agent step, and what its rollback undoes. Pending and Scheduling come before them, RollingBack
// and the ends after; the xstate machine and the lookup of a state's step are both built from
// this one table, so a state's name and its step are written once.
import type { MovePhase, MoveType } from '../api/types';
import { actingState, cleaningUpState, committedState, type SkipGuard, type StepStateOptions } from './actingStates';
import { initialContext } from './attempts';
import { moveSetup, type MoveStateConfig, type Reach } from './moveSetup';
import { rollingBackState } from './rollingBackState';
import type { MoveContext, Step } from './vocabulary';
import { finalStates, pendingState, schedulingState } from './waitingStates';

type StepOf = (ctx: MoveContext) => Step;

interface StepStateSpec {
  /** The agent step the state runs. */
  step: StepOf;
  /** Entering the state means this much has (possibly) been done; rollback undoes it. */
  reaches?: Reach;
  /** Skip the state for this move when this guard holds. */
  skipWhen?: SkipGuard;
  /** The step's answer, when it succeeds, is a line in history. */
  announce?: boolean;
}

interface StoryState extends StepStateSpec {
  converge?: boolean;
  /** The state's xstate config, once its place in the story is known. */
  build(o: StepStateOptions): MoveStateConfig;
}

/** A state before the point of no return; `converge`: climb the convergence ladder when pre-copy stalls. */
export const acting = (s: StepStateSpec & { converge?: boolean }): StoryState => ({ build: actingState, ...s });
/** A state past the point of no return: the VM runs (or is starting) on the target. */
export const committed = (s: StepStateSpec): StoryState => ({ build: committedState, ...s });
/** The clean-up of the source, the last state before Succeeded. */
export const cleaningUp = (step: StepOf): StoryState => ({ build: (o) => cleaningUpState(o.state), step });

export interface MoveStory {
  /**
   * The states after Scheduling, in the order they run: each goes on to the next when its step
   * succeeds (or it is skipped), the last to Succeeded.
   */
  states: Partial<Record<MovePhase, StoryState>>;
  /** Steps that undo what this attempt reached, in order. */
  rollback(ctx: MoveContext): Step[];
}

export function defineMove(type: MoveType, story: MoveStory) {
  const order = Object.keys(story.states) as MovePhase[];
  const storyStates = order.map((state, i) => {
    const { build, reaches, skipWhen, converge, announce } = story.states[state]!;
    return [state, build({ state, next: order[i + 1] ?? 'Succeeded', reaches, skipWhen, converge, announce })] as const;
  });
  const machine = moveSetup(story.rollback).createMachine({
    id: type,
    initial: 'Pending',
    context: ({ input }) => initialContext(input),
    states: {
      Pending: pendingState(),
      Scheduling: schedulingState(order[0]!),
      ...Object.fromEntries(storyStates),
      RollingBack: rollingBackState(),
      ...finalStates,
    },
  });
  return {
    type,
    machine,
    /** The agent step a state runs (undefined: the state runs none of its own). */
    step: (state: MovePhase, ctx: MoveContext): Step | undefined => story.states[state]?.step(ctx),
    /** The steps that undo what an attempt reached (before hosts lost are left out). */
    undo: story.rollback,
  };
}

export type MoveDefinition = ReturnType<typeof defineMove>;
