// Drives one move by hand, as the controller does: each event goes to the machine restored from
// its persisted form, and each step that succeeds changes the world (test/support/moveWorld).
// For the readable example tests; the exhaustive ones use explorer.ts.
import type { MovePhase } from '../../../src/api/types';
import {
  advance,
  contextOf,
  currentStep,
  isCommitted,
  persistMove,
  phaseOf,
  restoreMove,
  startMove,
  type MoveContext,
  type MoveEvent,
  type MoveState,
  type Note,
  type Role,
  type Step,
} from '../../../src/machines';
import { applyStep, loseAgent, runningOn, type World } from '../../support/moveWorld';
import type { Scenario } from './scenarios';

export const T0 = Date.parse('2030-01-01T00:00:00.000Z');

export class MoveDriver {
  move: MoveState;
  world: World;
  /** ms since the epoch of the next event. */
  now = T0;
  /** Every state the move rested in, in order (as status.history shows them). */
  readonly phases: MovePhase[];
  /** Every step the move asked for, as `<state>: <kind> on <role>`. */
  readonly steps: string[] = [];
  readonly notes: Note[] = [];

  constructor(readonly scenario: Scenario) {
    this.move = startMove(scenario.input);
    this.world = scenario.world;
    this.phases = [phaseOf(this.move)];
  }

  get phase(): MovePhase {
    return phaseOf(this.move);
  }

  get ctx(): MoveContext {
    return contextOf(this.move);
  }

  get step(): (Step & { key: string }) | undefined {
    return currentStep(this.move);
  }

  get committed(): boolean {
    return isCommitted(this.move);
  }

  get runningOn(): string[] {
    return runningOn(this.world);
  }

  get lastNote(): string {
    return this.notes.at(-1)?.message ?? '';
  }

  /** Move the clock on by `ms`. */
  wait(ms: number): this {
    this.now += ms;
    return this;
  }

  /** Feed one event at the current time; answers the notes it produced. */
  send(event: DistributiveOmit<MoveEvent, 'at'>): Note[] {
    const before = this.step;
    const { state, notes } = advance(this.move, { ...event, at: new Date(this.now).toISOString() } as MoveEvent);
    // The controller keeps nothing but what it persisted.
    this.move = restoreMove(JSON.parse(JSON.stringify(persistMove(state))));
    this.notes.push(...notes);
    if (phaseOf(this.move) !== this.phases.at(-1)) this.phases.push(phaseOf(this.move));
    const after = this.step;
    if (after && (after.key !== before?.key || this.steps.length === 0)) this.steps.push(`${this.phase}: ${after.request.kind} on ${after.role}`);
    return notes;
  }

  start(): this {
    this.send({ type: 'START', sourceReachable: this.scenario.sourceReachable });
    return this;
  }

  place(node = this.scenario.targetNode): this {
    this.send({ type: 'PLACED', targetNode: node });
    return this;
  }

  hostOf(role: Role): string {
    return role === 'source' ? this.ctx.sourceNode : this.ctx.targetNode!;
  }

  /** The current step succeeds: its effect lands in the world (it must be possible there). */
  succeed(answer: { guestHeartbeat?: number; downtimeMs?: number } = {}): this {
    const step = this.mustStep();
    const host = this.hostOf(step.role);
    const outcome = applyStep(this.world, host, step.request, this.ctx[step.resources]);
    if (!outcome.ok) throw new Error(`${step.key} (${step.request.kind}) cannot succeed on ${host}: ${outcome.reason}`);
    this.world = outcome.world;
    const endpoint = step.request.kind === 'prepareIncoming' ? { endpoint: { migrationUri: `tcp:${host}:49152` } } : {};
    this.send({ type: 'STEP_SUCCEEDED', step: step.key, ...endpoint, ...answer });
    return this;
  }

  /** The current step fails (and changes nothing). */
  fail(transient: boolean, message = transient ? 'connection reset' : 'disk full'): this {
    this.send({ type: 'STEP_FAILED', step: this.mustStep().key, message, transient });
    return this;
  }

  progress(p: { processedBytes: number; remainingBytes: number; iteration: number }): Note[] {
    return this.send({ type: 'PROGRESS', step: this.mustStep().key, ...p });
  }

  /** The agent of the host in `role` is lost; the host keeps what it had. */
  lose(role: Role): this {
    this.world = loseAgent(this.world, this.hostOf(role));
    this.send({ type: 'AGENT_LOST', role, message: `${role} host ${this.hostOf(role)}: its agent's lease expired` });
    return this;
  }

  cancel(): this {
    this.send({ type: 'CANCEL' });
    return this;
  }

  /** Start, place, and let every step succeed until the move ends (or `until` is reached). */
  run(until?: MovePhase): this {
    for (let i = 0; i < 50 && !['Succeeded', 'Failed', 'Cancelled'].includes(this.phase) && this.phase !== until; i++) {
      if (this.phase === 'Pending') {
        if (this.ctx.notBefore) this.now = Math.max(this.now, Date.parse(this.ctx.notBefore));
        this.start();
      } else if (this.phase === 'Scheduling') this.place();
      else this.succeed();
    }
    return this;
  }

  private mustStep(): Step & { key: string } {
    const step = this.step;
    if (!step) throw new Error(`${this.phase} runs no step`);
    return step;
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
