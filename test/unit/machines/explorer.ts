// Systematic exploration of a move machine: depth-first over the events each state accepts
// (placement, step results, progress, lost agents, cancel), with a bounded number of injected
// failures, lost agents, cancels and stalls per path. The world model (test/support/moveWorld)
// applies every step that succeeds, so each path ends with a verdict on where the VM is.
// Every situation met is checked (crash-safe persistence, stale results ignored, never two
// running instances, a way forward, retry rules), and every transition taken is counted against
// the table read from the machine definitions.
import { isDeepStrictEqual } from 'node:util';
import type { MovePhase } from '../../../src/api/types';
import { ALWAYS, machineGraph } from '../../../src/machines/diagram';
import {
  advance,
  contextOf,
  currentStep,
  isCommitted,
  isDone,
  machineFor,
  persistMove,
  phaseOf,
  restoreMove,
  startMove,
  type MoveEvent,
  type MoveState,
  type Note,
  type Role,
} from '../../../src/machines';
import { applyStep, definedOn, describeWorld, disksOn, loseAgent, runningOn, type World } from '../../support/moveWorld';
import { phaseAfterMove } from '../../../src/controller/moverequest/vmLock';
import type { Scenario } from './scenarios';

export interface Budget {
  /** Step failures (transient or permanent) and timeouts. */
  failures: number;
  lostAgents: number;
  cancels: number;
  /** PROGRESS reports that show the step moving. */
  progress: number;
  /** Runs of three pre-copy passes that do not shrink what remains (the ladder's trigger). */
  stalls: number;
}

export interface Limits extends Budget {
  /** Events per path before the path is cut (a safety net: budgets keep paths finite). */
  depth: number;
}

/**
 * Two campaigns keep the search small and still cover every transition: one for failures,
 * lost agents and cancels in every combination, one for progress, timeouts and the ladder.
 */
export const CAMPAIGNS: Record<'failures' | 'progress', Limits> = {
  failures: { failures: 2, lostAgents: 1, cancels: 1, progress: 0, stalls: 0, depth: 40 },
  progress: { failures: 1, lostAgents: 0, cancels: 1, progress: 1, stalls: 2, depth: 40 },
};

export interface Violation {
  rule: string;
  detail: string;
  path: string[];
}

export interface Exploration {
  scenario: string;
  /** Paths from the start to an end (or to the depth limit), counted through shared sub-trees. */
  paths: number;
  endings: Record<'Succeeded' | 'Failed' | 'Cancelled', number>;
  /** Paths cut at the depth limit. */
  cut: number;
  /** Paths that end after a lost agent or a rollback step that failed for good. */
  excused: number;
  /** Distinct situations (machine state, world, budget) visited, each one checked. */
  visited: number;
  /** `state|event` and `state|event|candidate` taken. */
  covered: Set<string>;
  violations: Violation[];
}

/** Paths below a node, by how they end. */
interface Tally {
  paths: number;
  cut: number;
  excused: number;
  Succeeded: number;
  Failed: number;
  Cancelled: number;
}

const NO_PATHS: Tally = { paths: 0, cut: 0, excused: 0, Succeeded: 0, Failed: 0, Cancelled: 0 };
const addTally = (a: Tally, b: Tally): Tally => ({
  paths: a.paths + b.paths,
  cut: a.cut + b.cut,
  excused: a.excused + b.excused,
  Succeeded: a.Succeeded + b.Succeeded,
  Failed: a.Failed + b.Failed,
  Cancelled: a.Cancelled + b.Cancelled,
});

/** What happened on the way to a node (for verdicts and messages). */
interface Trail {
  events: string[];
  /** Step key → `attempt role:name` of the step it named on this path. */
  keys: Map<string, string>;
  /** Hosts whose agent was lost during the move. */
  lostHosts: string[];
  /** Rollback or clean-up steps that failed for good. */
  gaveUp: string[];
  /** Where the first cancel arrived, and where a rollback under way was headed then. */
  cancelAt?: { phase: MovePhase; committed: boolean; rollingBackTo?: string };
  lastNotes: Note[];
  /** The state the last event arrived in. */
  lastFrom?: MovePhase;
  /** What the rollback that led to the current attempt said (where it left the VM). */
  retryNotes: Note[];
}

interface Node {
  move: MoveState;
  world: World;
  /** ms since the epoch: the time of the next event. */
  clock: number;
  budget: Budget;
  trail: Trail;
}

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const MiB = 1024 ** 2;
const iso = (ms: number): string => new Date(ms).toISOString();
const WAITING: MovePhase[] = ['Pending', 'Scheduling'];

/** Explore one scenario within the limits. */
export function explore(s: Scenario, limits: Limits): Exploration {
  return new Explorer(s, limits).run();
}

/** The `state|event` pairs and `state|event|candidate` transitions a machine's definition holds. */
export function transitionTable(type: Scenario['input']['moveType']): { events: string[]; transitions: string[] } {
  const edges = machineGraph(machineFor(type)).edges.filter((e) => e.event !== ALWAYS);
  return {
    events: [...new Set(edges.map((e) => `${e.from}|${e.event}`))],
    transitions: edges.map((e) => `${e.from}|${e.event}|${e.candidate}`),
  };
}

class Explorer {
  private readonly machine;
  private readonly result: Exploration;
  private readonly memo = new Map<string, Tally>();
  /** Every step key any path used, with the `attempt role:name` it named. */
  private readonly keys = new Map<string, string>();

  constructor(
    private readonly s: Scenario,
    private readonly limits: Limits,
  ) {
    this.machine = machineFor(s.input.moveType);
    this.result = {
      scenario: s.name,
      paths: 0,
      endings: { Succeeded: 0, Failed: 0, Cancelled: 0 },
      cut: 0,
      excused: 0,
      visited: 0,
      covered: new Set(),
      violations: [],
    };
  }

  run(): Exploration {
    const root: Node = {
      move: startMove(this.s.input),
      world: this.s.world,
      clock: T0,
      budget: { ...this.limits },
      trail: { events: [], keys: new Map(), lostHosts: [], gaveUp: [], lastNotes: [], retryNotes: [] },
    };
    const t = this.visit(root, 0);
    return Object.assign(this.result, {
      paths: t.paths,
      cut: t.cut,
      excused: t.excused,
      endings: { Succeeded: t.Succeeded, Failed: t.Failed, Cancelled: t.Cancelled },
    });
  }

  // ------------------------------------------------------------------ traversal

  private visit(n: Node, depth: number): Tally {
    const key = this.memoKey(n);
    const known = this.memo.get(key);
    if (known) return known;
    this.result.visited += 1;
    n = this.settle(n);
    this.inspect(n);
    let tally: Tally;
    if (isDone(n.move)) {
      const excused = this.judgeEnd(n);
      tally = { ...NO_PATHS, paths: 1, excused: excused ? 1 : 0, [phaseOf(n.move)]: 1 };
    } else if (depth >= this.limits.depth) {
      tally = { ...NO_PATHS, paths: 1, cut: 1 };
    } else {
      const next = this.choices(n);
      if (next.length === 0) this.violate(n, 'way forward', `no event moves ${phaseOf(n.move)} on`);
      tally = next.map((child) => this.visit(child, depth + 1)).reduce(addTally, NO_PATHS);
    }
    this.memo.set(key, tally);
    return tally;
  }

  /**
   * Nodes with the same key have the same future and the same verdicts: same machine state and
   * world, same budget, same facts the verdicts read. Times count relative to the clock: the
   * machines only compare them with the events' `at`.
   */
  private memoKey(n: Node): string {
    const t = n.trail;
    const json = JSON.stringify([
      persistMove(n.move),
      n.world,
      n.budget,
      t.gaveUp.length > 0,
      t.cancelAt ?? null,
      t.retryNotes,
      isDone(n.move) ? [t.lastNotes, t.lastFrom] : null,
    ]);
    return json.replace(/"(\d{4}-\d\d-\d\dT[\d:.]+Z)"/g, (_, at: string) => `"${Date.parse(at) - n.clock}"`);
  }

  private accepts(n: Node, type: MoveEvent['type']): boolean {
    return !!this.machine.root.states[phaseOf(n.move)]?.transitions.has(type);
  }

  private hostOf(n: Node, role: Role): string | undefined {
    const ctx = contextOf(n.move);
    return role === 'source' ? ctx.sourceNode : ctx.targetNode;
  }

  private agentUp(n: Node, host: string | undefined): boolean {
    return !!host && n.world.hosts[host]?.agent === 'up';
  }

  /** Every event the current state accepts, in the forms the world and the controller can produce now. */
  private choices(n: Node): Node[] {
    const out: Node[] = [];
    const ctx = contextOf(n.move);
    const phase = phaseOf(n.move);
    const b = n.budget;
    const spend = (k: keyof Budget): Budget => ({ ...b, [k]: b[k] - 1 });

    // The controller starts a move only while the source's agent lives, or for a rebuild once
    // the source host is fenced (then it says sourceReachable: false); otherwise it waits.
    const source = n.world.hosts[ctx.sourceNode]!;
    if (this.accepts(n, 'START') && (source.agent === 'up' || (ctx.moveType === 'Rebuild' && source.fenced))) {
      const at = Math.max(n.clock, ctx.notBefore ? Date.parse(ctx.notBefore) : 0);
      // A live move of a running VM starts with what the source showed of its guest, as the controller's does.
      const sourceGuest = ctx.moveType === 'Live' && ctx.vmRunning ? { sourceGuest: { state: 'Ready' as const, reason: 'Heartbeat', heartbeat: 7 } } : {};
      out.push(this.feed(n, { type: 'START', at: iso(at), sourceReachable: source.agent === 'up', ...sourceGuest }, 'START', { clock: at }));
    }
    if (this.accepts(n, 'PLACED') && this.agentUp(n, this.s.targetNode)) {
      out.push(this.feed(n, { type: 'PLACED', targetNode: this.s.targetNode, at: iso(n.clock) }, `PLACED ${this.s.targetNode}`));
    }
    if (this.accepts(n, 'REJECTED')) {
      // What the controller rejects for: in Pending the VM object is gone; in Scheduling no host fits.
      const message = phase === 'Pending' ? 'VirtualMachine vm-1 no longer exists' : 'no host can take the VM';
      out.push(this.feed(n, { type: 'REJECTED', message, at: iso(n.clock) }, 'REJECTED'));
    }
    const step = currentStep(n.move);
    const host = step ? this.hostOf(n, step.role) : undefined;
    const answers = !!step && this.agentUp(n, host);
    const undoing = phase === 'RollingBack' || phase === 'CleaningUp';
    if (step && answers && this.accepts(n, 'STEP_SUCCEEDED')) {
      const outcome = applyStep(n.world, host!, step.request, ctx[step.resources]);
      if (outcome.ok) {
        const endpoint = step.request.kind === 'prepareIncoming' ? { endpoint: { migrationUri: `tcp:${host}:49152` } } : {};
        out.push(this.feed(n, { type: 'STEP_SUCCEEDED', step: step.key, at: iso(n.clock), ...endpoint }, `${step.key} ok`, { world: outcome.world }));
      } else {
        // The agent cannot do it: the honest answer is a failure, whatever the budget.
        out.push(
          this.feed(n, { type: 'STEP_FAILED', step: step.key, message: outcome.reason, transient: false, at: iso(n.clock) }, `${step.key} refused (${outcome.reason})`, {
            gaveUp: undoing ? `${step.name}: ${outcome.reason}` : undefined,
          }),
        );
      }
    }
    if (step && answers && this.accepts(n, 'STEP_FAILED') && b.failures > 0) {
      for (const transient of [true, false]) {
        const message = transient ? 'connection reset' : 'disk full';
        out.push(
          this.feed(n, { type: 'STEP_FAILED', step: step.key, message, transient, at: iso(n.clock) }, `${step.key} failed${transient ? ' (transient)' : ''}`, {
            budget: spend('failures'),
            gaveUp: undoing && !transient ? `${step.name}: ${message}` : undefined,
          }),
        );
      }
    }
    if (this.accepts(n, 'PROGRESS')) out.push(...this.progressChoices(n));
    if (this.accepts(n, 'AGENT_LOST')) {
      for (const role of ['source', 'target'] as const) {
        const lost = this.hostOf(n, role);
        if (!lost) continue;
        const ev: MoveEvent = { type: 'AGENT_LOST', role, message: `${role} host ${lost}: its agent's lease expired`, at: iso(n.clock) };
        if (this.agentUp(n, lost) && b.lostAgents > 0) {
          out.push(this.feed(n, ev, `AGENT_LOST ${role} (${lost})`, { world: loseAgent(n.world, lost), budget: spend('lostAgents'), lostHost: lost }));
        } else if (!this.agentUp(n, lost) && step?.role === role) {
          // The controller reports a lost host again whenever a step wants it (e.g. after a retry).
          out.push(this.feed(n, ev, `AGENT_LOST ${role} (${lost}) again`));
        }
      }
    }
    if (this.accepts(n, 'CANCEL') && b.cancels > 0) {
      out.push(this.feed(n, { type: 'CANCEL', at: iso(n.clock) }, 'CANCEL', { budget: spend('cancels'), cancel: true }));
    }
    return out;
  }

  /** Progress that moves; a step that goes quiet for too long; pre-copy passes that stall. */
  private progressChoices(n: Node): Node[] {
    const out: Node[] = [];
    const ctx = contextOf(n.move);
    const b = n.budget;
    const key = currentStep(n.move)?.key ?? 'none';
    const candidates = this.machine.root.states[phaseOf(n.move)]!.transitions.get('PROGRESS')!;
    const watch = ctx.watch;
    const processed = watch?.processedBytes ?? 0;
    // bestRemainingBytes starts as a "nothing seen yet" sentinel.
    const best = watch && watch.bestRemainingBytes < Number.MAX_SAFE_INTEGER ? watch.bestRemainingBytes : 1024 * MiB;
    const iteration = (watch?.lastIteration ?? 0) + 1;
    const progress = (at: number, more: number, remaining: number, pass: number): MoveEvent => ({
      type: 'PROGRESS',
      step: key,
      processedBytes: processed + more,
      remainingBytes: remaining,
      iteration: pass,
      at: iso(at),
    });
    if (b.progress > 0) {
      out.push(this.feed(n, progress(n.clock, 64 * MiB, Math.floor(best / 2), iteration), 'PROGRESS moving', { budget: { ...b, progress: b.progress - 1 } }));
    }
    if (candidates.length === 1) return out; // this state ignores progress
    if (b.failures > 0) {
      const quietUntil = n.clock + (ctx.policy.progressTimeoutSeconds + 1) * 1000;
      out.push(this.feed(n, progress(quietUntil, 0, best, iteration - 1), 'PROGRESS none for too long', { clock: quietUntil, budget: { ...b, failures: b.failures - 1 } }));
    }
    if (candidates.length > 2 && b.stalls > 0) {
      // Pre-copy passes that leave as much to send as before, until the judge acts (climbs a
      // rung, or rolls back from the top one).
      let node = n;
      for (let pass = 0; pass < 5; pass++) {
        node = this.feed(node, progress(node.clock, 64 * MiB * (pass + 1), best, iteration + pass), `PROGRESS stalled pass ${pass + 1}`);
        const c = contextOf(node.move);
        if (phaseOf(node.move) !== phaseOf(n.move) || c.rung !== ctx.rung) break;
        node = this.settle(node);
        this.inspect(node);
      }
      out.push({ ...node, budget: { ...b, stalls: b.stalls - 1 } });
    }
    return out;
  }

  // ------------------------------------------------------------------ one event

  private feed(
    n: Node,
    event: MoveEvent,
    label: string,
    o: { world?: World; clock?: number; budget?: Budget; lostHost?: string; gaveUp?: string | undefined; cancel?: boolean } = {},
  ): Node {
    const phase = phaseOf(n.move);
    const ctx = contextOf(n.move);
    this.cover(n.move, event);
    const { state, notes } = advance(n.move, event);
    const step = currentStep(n.move);
    const keys = step ? new Map(n.trail.keys).set(step.key, `${ctx.attempt} ${step.role}:${step.name}`) : n.trail.keys;
    const trail: Trail = {
      events: [...n.trail.events, `${phase}: ${label}${notes.length ? ` → ${notes.map((x) => x.message).join(' / ')}` : ''}`],
      keys,
      lostHosts: o.lostHost ? [...n.trail.lostHosts, o.lostHost] : n.trail.lostHosts,
      gaveUp: o.gaveUp ? [...n.trail.gaveUp, o.gaveUp] : n.trail.gaveUp,
      cancelAt:
        o.cancel && !n.trail.cancelAt
          ? { phase, committed: isCommitted(n.move), ...(phase === 'RollingBack' ? { rollingBackTo: ctx.rollback?.outcome } : {}) }
          : n.trail.cancelAt,
      lastNotes: notes,
      lastFrom: phase,
      retryNotes: phase !== 'Pending' && phaseOf(state) === 'Pending' ? notes : n.trail.retryNotes,
    };
    const next: Node = { move: state, world: o.world ?? n.world, clock: o.clock ?? n.clock, budget: o.budget ?? n.budget, trail };
    this.checkRetry(n, event, next);
    return next;
  }

  /**
   * Before the point of no return a transient failure rolls back to another attempt (while
   * attempts remain, no cancel came, and the source can act); anything else rolls back to Failed.
   * A new attempt starts later than the failure, with attempt + 1.
   */
  private checkRetry(n: Node, event: MoveEvent, next: Node): void {
    const ctx = contextOf(n.move);
    const phase = phaseOf(n.move);
    const after = phaseOf(next.move);
    const acting = !WAITING.includes(phase) && phase !== 'RollingBack' && phase !== 'CleaningUp' && !isCommitted(n.move);
    if (acting && event.type === 'STEP_FAILED' && event.step === currentStep(n.move)?.key) {
      const retry = event.transient && ctx.attempt < ctx.policy.maxAttempts && !ctx.cancelRequested && (!ctx.unreachable.source || ctx.moveType === 'Rebuild');
      const outcome = after === 'RollingBack' ? contextOf(next.move).rollback?.outcome : after === 'Pending' ? 'Retry' : after;
      if (outcome !== (retry ? 'Retry' : 'Failed')) this.violate(next, 'retry', `a ${event.transient ? 'transient' : 'permanent'} failure in ${phase} (attempt ${ctx.attempt}) leads to ${outcome}`);
    }
    if (after === 'Pending' && phase !== 'Pending') {
      const c = contextOf(next.move);
      if (c.attempt !== ctx.attempt + 1) this.violate(next, 'retry', `attempt ${ctx.attempt} was followed by attempt ${c.attempt}`);
      if (!c.notBefore || Date.parse(c.notBefore) <= Date.parse(event.at)) this.violate(next, 'retry', `attempt ${c.attempt} may start at once (notBefore ${c.notBefore})`);
    }
  }

  private cover(m: MoveState, event: MoveEvent): void {
    this.result.covered.add(`${phaseOf(m)}|${event.type}`);
    const t = this.machine.getTransitionData(m.snapshot as never, event as never)[0];
    if (!t) return;
    const candidates = t.source.transitions.get(t.eventType) ?? [];
    this.result.covered.add(`${t.source.key}|${event.type}|${candidates.indexOf(t)}`);
  }

  /** What the controller does on every reconcile: persist to `.status`, and restore from it. */
  private settle(n: Node): Node {
    const persisted = persistMove(n.move);
    const restored = restoreMove(JSON.parse(JSON.stringify(persisted)));
    // A field set to undefined and a missing one mean the same; anything else (Infinity, NaN,
    // a Date…) must survive JSON unchanged.
    if (exactJson(persistMove(restored)) !== exactJson(persisted)) {
      this.violate(n, 'persist/restore', `the restored snapshot differs: ${firstDifference(persisted, persistMove(restored))}`);
    }
    if (isCommitted(restored) !== isCommitted(n.move) || isDone(restored) !== isDone(n.move)) this.violate(n, 'persist/restore', 'tags or status differ after restore');
    return { ...n, move: restored };
  }

  // ------------------------------------------------------------------ checks in every situation

  private inspect(n: Node): void {
    const running = runningOn(n.world);
    if (running.length > 1) this.violate(n, 'one instance', `the VM runs on ${running.join(' and ')}`);
    for (const harm of n.world.harm) this.violate(n, 'no harm', harm);
    if (isDone(n.move)) return;
    const ctx = contextOf(n.move);
    const phase = phaseOf(n.move);
    const step = currentStep(n.move);
    if (!this.accepts(n, 'CANCEL')) this.violate(n, 'way forward', `${phase} does not accept CANCEL`);
    if (!WAITING.includes(phase) && !step) this.violate(n, 'way forward', `${phase} names no step`);
    if (step) {
      if (ctx.unreachable[step.role]) this.violate(n, 'way forward', `${phase} waits for ${step.key} on ${this.hostOf(n, step.role)}, which it knows is unreachable`);
      // A key names one step for the whole move: on this path, and in one attempt on every path.
      const identity = `${ctx.attempt} ${step.role}:${step.name}`;
      const earlier = n.trail.keys.get(step.key);
      if (earlier && earlier !== identity) this.violate(n, 'step keys', `key ${step.key} named "${earlier}" earlier on this path and now "${identity}"`);
      const attemptSeen = this.keys.get(step.key)?.split(' ')[0];
      if (attemptSeen && attemptSeen !== String(ctx.attempt)) this.violate(n, 'step keys', `key ${step.key} named a step of attempt ${attemptSeen} and now one of attempt ${ctx.attempt}`);
      this.keys.set(step.key, identity);
    }
    this.checkStaleIgnored(n, step?.key);
    if (phase === 'Pending' && ctx.notBefore) {
      const early = advance(n.move, { type: 'START', at: iso(Date.parse(ctx.notBefore) - 1), sourceReachable: this.agentUp(n, ctx.sourceNode) });
      if (phaseOf(early.state) !== 'Pending') this.violate(n, 'retry', `START before notBefore ${ctx.notBefore} was taken`);
    }
  }

  /**
   * Results and progress about any other step change nothing: a bogus key, the step before this
   * one on this path, and every step of an earlier attempt on any path.
   */
  private checkStaleIgnored(n: Node, key: string | undefined): void {
    const attempt = contextOf(n.move).attempt;
    const earlier = [...this.keys].filter(([, identity]) => Number(identity.split(' ')[0]) < attempt).map(([k]) => k);
    const previous = [...n.trail.keys.keys()].filter((k) => k !== key).at(-1);
    const stale = [...new Set(['no-such-step', ...earlier, ...(previous ? [previous] : [])])].filter((k) => k !== key);
    const before = persistMove(n.move);
    for (const k of stale) {
      const events: MoveEvent[] = [
        { type: 'STEP_SUCCEEDED', step: k, at: iso(n.clock) },
        { type: 'STEP_FAILED', step: k, message: 'stale', transient: false, at: iso(n.clock) },
        // A day later, with huge numbers: would trip every timeout and the ladder if taken.
        { type: 'PROGRESS', step: k, processedBytes: 1e15, remainingBytes: 1e15, iteration: 1e6, at: iso(n.clock + 86_400_000) },
      ];
      for (const ev of events) {
        // No transition enabled means xstate leaves the snapshot as it is (the cheap, common case).
        if (this.machine.getTransitionData(n.move.snapshot as never, ev as never).length === 0) continue;
        const { state, notes } = advance(n.move, ev);
        if (!isDeepStrictEqual(persistMove(state), before) || notes.length > 0) {
          this.violate(n, 'stale results', `${ev.type} for ${k} in ${phaseOf(n.move)} was taken: ${firstDifference(before, persistMove(state))}`);
        }
      }
    }
  }

  // ------------------------------------------------------------------ verdicts on a finished path

  /** Judge where the move left the VM; answers whether the path was an excused one. */
  private judgeEnd(n: Node): boolean {
    const ctx = contextOf(n.move);
    const phase = phaseOf(n.move);
    const w = n.world;
    const running = runningOn(w);
    const lastWords = [...n.trail.lastNotes.map((x) => x.message), ctx.failure ?? ''].join(' | ');
    this.judgeVmPhase(n);
    if (n.trail.lostHosts.length > 0 || n.trail.gaveUp.length > 0) {
      this.judgeExcusedEnd(n, lastWords);
      return true;
    }
    this.judgeCancel(n);
    const succeeded = phase === 'Succeeded';
    if (!this.s.sourceReachable && !succeeded) {
      // A rebuild of a fenced host's VM that did not happen: the VM runs nowhere, and says so.
      if (running.length > 0) this.violate(n, 'end state', `${phase} with the source fenced, but the VM runs on ${running.join(', ')}`);
      if (phase === 'Failed' && !/runs nowhere|no longer exists/.test(lastWords)) this.violate(n, 'end state', `the failure does not say the VM runs nowhere: ${lastWords}`);
      return false;
    }
    const home = succeeded ? ctx.targetNode! : ctx.sourceNode;
    const resources = succeeded ? ctx.after : ctx.before;
    const vm = w.hosts[home]?.vm;
    const same = (r: { cpu: number; memoryBytes: number } | undefined) => !!r && r.cpu === resources.cpu && r.memoryBytes === resources.memoryBytes;
    const which = succeeded ? 'new' : 'old';
    if (ctx.vmRunning) {
      if (running.length !== 1 || running[0] !== home) this.violate(n, 'end state', `${phase}: expected the VM running on ${home} alone; it runs on [${running.join(', ')}]`);
      else if (!same(vm?.live) || !same(vm?.defined)) this.violate(n, 'end state', `${phase}: the VM on ${home} does not have the ${which} resources`);
    } else {
      if (running.length > 0) this.violate(n, 'end state', `${phase}: a stopped VM runs on ${running.join(', ')}`);
      if (vm?.power !== 'stopped' || !same(vm.defined)) this.violate(n, 'end state', `${phase}: expected the VM stopped on ${home} with the ${which} resources`);
    }
    const leftovers = definedOn(w).filter((h) => h !== home);
    if (leftovers.length > 0) this.violate(n, 'end state', `${phase}: the VM is also defined on ${leftovers.join(', ')}`);
    const wantDisks = succeeded && ctx.variant === 'FromImage' ? 'image' : 'data';
    const disks = disksOn(w, home);
    if (disks !== wantDisks) this.violate(n, 'end state', `${phase}: the VM's disks on ${home} hold ${disks ?? 'nothing'}, expected ${wantDisks}`);
    return false;
  }

  /** The phase the controller writes on the VM as it lets it go (success only) must be where the VM is. */
  private judgeVmPhase(n: Node): void {
    const phase = phaseOf(n.move);
    const written = phaseAfterMove({ phase, machine: persistMove(n.move) as unknown as Record<string, unknown> }, 'Moving');
    if (!written) return;
    const target = contextOf(n.move).targetNode!;
    const running = runningOn(n.world);
    const ok = written === 'Running' ? running.length === 1 && running[0] === target : running.length === 0 && n.world.hosts[target]?.vm?.power === 'stopped';
    if (!ok) this.violate(n, 'VM phase', `${phase}: the VM would be shown ${written} on ${target}; it runs on [${running.join(', ')}]`);
  }

  /**
   * A lost agent or a rollback step that failed for good may leave the VM elsewhere than the
   * outcome promises; then the last words of the move must say where it is and is not. A
   * success still means the VM runs on the target.
   */
  private judgeExcusedEnd(n: Node, lastWords: string): void {
    const ctx = contextOf(n.move);
    const running = runningOn(n.world);
    let text = lastWords;
    if (n.trail.lastFrom === 'Pending' && /no longer exists/.test(text)) return; // the VM object is gone
    if (n.trail.lastFrom && WAITING.includes(n.trail.lastFrom)) {
      // Nothing was done in this attempt: where the last rollback left the VM still holds.
      text = `${text} | ${n.trail.retryNotes.map((x) => x.message).join(' / ')}`;
    }
    if (phaseOf(n.move) === 'Succeeded') {
      const target = ctx.targetNode!;
      const ok = ctx.vmRunning ? running.length === 1 && running[0] === target : running.length === 0 && n.world.hosts[target]?.vm?.power === 'stopped';
      if (!ok) this.violate(n, 'end state', `Succeeded, but the VM is not ${ctx.vmRunning ? 'running' : 'stopped'} on ${target} alone`);
      return;
    }
    // "rolled back" promises the VM is back where it was: on the source.
    const named = (host: string) =>
      text.includes(host) || (host === ctx.sourceNode && /source|rolled back|where it was/.test(text)) || (host === ctx.targetNode && /target/.test(text));
    for (const host of running) {
      if (!named(host)) this.violate(n, 'last words', `the VM runs on ${host}, which the last words do not name: ${text}`);
    }
    if (running.length > 0 && /runs nowhere(?! else)/.test(text)) this.violate(n, 'last words', `they say the VM runs nowhere, but it runs on ${running.join(', ')}: ${text}`);
    if (ctx.vmRunning && running.length === 0 && !/runs nowhere|Lost|not started/.test(text)) this.violate(n, 'last words', `the VM runs nowhere, which they do not say: ${text}`);
    if (n.trail.gaveUp.length > 0 && !/incomplete/.test(text)) this.violate(n, 'last words', `a rollback step failed (${n.trail.gaveUp.join('; ')}), which they do not say: ${text}`);
  }

  /** Before the point of no return a cancel rolls back to Cancelled; after it, it is recorded and the move completes. */
  private judgeCancel(n: Node): void {
    const c = n.trail.cancelAt;
    if (!c) return;
    const end = phaseOf(n.move);
    const ctx = contextOf(n.move);
    if (!ctx.cancelRequested) this.violate(n, 'cancel', `the cancel in ${c.phase} was not recorded`);
    if (c.committed) {
      if (!ctx.cancelIgnored) this.violate(n, 'cancel', `a cancel in ${c.phase} (past the point of no return) was not recorded as ignored`);
      if (end === 'Cancelled') this.violate(n, 'cancel', `a cancel in ${c.phase} (past the point of no return) ended Cancelled`);
    } else if (c.rollingBackTo === 'Failed') {
      if (end !== 'Failed') this.violate(n, 'cancel', `a cancel while rolling back a failure ended ${end}`);
    } else if (end !== 'Cancelled') {
      this.violate(n, 'cancel', `a cancel in ${c.phase} (before the point of no return) ended ${end}`);
    }
  }

  private violate(n: Node, rule: string, detail: string): void {
    if (this.result.violations.length >= 100) return;
    this.result.violations.push({ rule, detail: `${detail} [${describeWorld(n.world)}]`, path: [...n.trail.events] });
  }
}

/** JSON that tells apart what JSON itself would blur: non-finite numbers and non-plain objects. */
export function exactJson(x: unknown): string {
  return JSON.stringify(x, function (this: Record<string, unknown>, k, v: unknown) {
    const raw = this[k];
    if (typeof raw === 'number' && !Number.isFinite(raw)) return `#number:${raw}`;
    if (raw instanceof Date || raw instanceof Map || raw instanceof Set) return `#${raw.constructor.name}:${String(raw)}`;
    return v;
  });
}

/** The first place where two JSON-like values differ, for messages. */
export function firstDifference(a: unknown, b: unknown, path = ''): string {
  if (isDeepStrictEqual(a, b)) return 'none';
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return `${path || '.'}: ${String(a)} ≠ ${String(b)}`;
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = (a as Record<string, unknown>)[k];
    const y = (b as Record<string, unknown>)[k];
    if (!isDeepStrictEqual(x, y)) return firstDifference(x, y, `${path}.${k}`);
  }
  return `${path}: differ`;
}
