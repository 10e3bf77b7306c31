// What one HostEvacuation should do next, and what its status says. Pure: the reconciler observes
// (the evacuation, its node and host, the VMs on it, the MoveRequests it owns, the hosts to plan
// over), this decides (cordon, create, cancel, delete, uncordon, let go) and the reconciler acts.
// A running evacuation is decided here step by step, each step in its own file; a dry run and a
// stop (cancel, delete) in theirs.
import { dryRun } from './dryRun';
import { classifyHost, howToMove, knownHostState, type HostState } from './hostState';
import { cancelOvertaken, givenUp, isOpen, movesToCreate } from './nextMoves';
import { cordon, fencing } from './nodeConditions';
import { isFinal, phaseEvents, phaseOf, setPhaseConditions } from './phase';
import { planEvacuation, type PlanStep } from './planner';
import { readyToMove, vmRows, type VmRow } from './rows';
import { StatusDraft } from './statusDraft';
import { cancelling, deleting } from './stopping';
import { planRows, plural, tally } from './tally';
import { DEFAULT_STRATEGY, strategyWords } from './strategy';
import { vmKey } from './vms';
import { bytesAcross } from '../../machines/vocabulary';
import type { PlannedMove } from '../../api/types';
import type { EvacuationActions, EvacuationDecision, EvacuationFacts, EventNote } from './types';

/** Retries per VM when spec.maxRetries is not set. */
export const DEFAULT_MAX_RETRIES = 2;
export const DEFAULT_MAX_PARALLEL = 2;

export function decideEvacuation(f: EvacuationFacts): EvacuationDecision {
  const e = f.evacuation;
  const prev = e.status ?? {};
  const now = f.now.toISOString();
  const draft = new StatusDraft(prev, now, e.metadata.generation);
  const actions: EvacuationActions = { create: [], cancel: [], delete: [], stop: [], release: false };
  const events: EventNote[] = [];
  const host = classifyHost(f.host, f.deadHostAfterSeconds, e.spec.nodeName);

  if (e.metadata.deletionTimestamp) return deleting(f, draft, actions, events);
  if (isFinal(prev.phase)) return { status: prev, actions, events };
  if (e.spec.dryRun) return dryRun(f, host, draft, events);
  if (e.spec.cancel) return cancelling(f, draft, actions, events);
  return evacuating(f, host, draft, actions, events);
}

/**
 * The VMs that do not leave the node: those to shut down (evacuationStrategy Shutdown) are stopped
 * there — the action sets their spec.running to false, the VirtualMachine controller stops them —
 * and those that wait for a person (None) are named in the WaitingForPerson condition and an Event
 * whenever the list changes. Answers the waiting VMs and the rows of the stopped ones.
 */
function settleInPlace(f: EvacuationFacts, steps: PlanStep[], rows: VmRow[], d: StatusDraft, actions: EvacuationActions, events: EventNote[]): { waiting: string[]; settled: PlannedMove[] } {
  const node = f.evacuation.spec.nodeName;
  const name = f.evacuation.metadata.name ?? '';
  for (const s of steps) {
    if (s.action !== 'Shutdown' || s.vm.spec.running === false) continue;
    const key = vmKey(s.vm);
    actions.stop.push({ namespace: s.namespace, name: s.vmName, why: `evacuationStrategy Shutdown (HostEvacuation ${name})` });
    events.push({ type: 'Normal', reason: 'ShuttingDown', message: `${key}: stopped and left on ${node} (${strategyWords(f.strategies?.get(key) ?? DEFAULT_STRATEGY)})` });
  }
  const settled: PlannedMove[] = [];
  for (const r of rows) {
    if (r.standing.kind !== 'Done' || !r.standing.stopped || !r.vm) continue;
    const st = f.strategies?.get(r.key) ?? DEFAULT_STRATEGY;
    settled.push({
      namespace: r.vm.metadata.namespace ?? 'default',
      vmName: r.vm.metadata.name ?? '',
      order: 0,
      action: 'Shutdown',
      strategy: st.strategy,
      strategySource: st.source,
      ...(st.policy !== undefined ? { strategyPolicy: st.policy } : {}),
      reason: `${strategyWords(st)}: stopped and left on ${node}`,
    });
  }
  const waiting = steps.filter((s) => s.action === 'WaitForPerson').map((s) => vmKey(s.vm));
  const prev = d.get('WaitingForPerson');
  if (waiting.length) {
    const message = `${plural(waiting.length, 'VM')} ${waiting.length === 1 ? 'waits' : 'wait'} for a person (evacuationStrategy None): ${waiting.join(', ')} — move or delete ${waiting.length === 1 ? 'it' : 'them'} by hand, or change spec.evacuationStrategy`;
    if (prev?.status !== 'True' || prev.message !== message) events.push({ type: 'Warning', reason: 'WaitingForPerson', message });
    d.set({ type: 'WaitingForPerson', status: 'True', reason: 'EvacuationStrategyNone', message });
  } else if (prev?.status === 'True') {
    d.set({ type: 'WaitingForPerson', status: 'False', reason: 'NoneWaiting', message: 'no VM waits for a person' });
  }
  return { waiting, settled };
}

/** The evacuation proper: cordon, re-plan the VMs still to move, create the next moves, count, and say the phase. */
function evacuating(f: EvacuationFacts, host: HostState, d: StatusDraft, actions: EvacuationActions, events: EventNote[]): EvacuationDecision {
  const e = f.evacuation;
  const node = e.spec.nodeName;
  const now = f.now.toISOString();
  const maxRetries = e.spec.maxRetries ?? DEFAULT_MAX_RETRIES;
  const maxParallel = Math.max(1, e.spec.maxParallel ?? DEFAULT_MAX_PARALLEL);

  cordon(f, d, actions, events);
  fencing(f, host, d, events);
  cancelOvertaken(f, host, actions, events);

  // Where each VM stands, which can move now, where to, and how many may start.
  const rows = vmRows(f, maxRetries, host.state === 'Alive');
  const { mode, hold } = howToMove(host, e.spec.mode ?? 'Auto', node);
  const { ready, avoid, waiting } = readyToMove(rows, f, host, hold);
  // maxParallel counts the moves whose bytes may still cross, as the cluster's limits do.
  const open = f.moves.filter(isOpen);
  const active = open.filter((mr) => !bytesAcross(mr.status?.phase)).length;
  const steps = mode ? planEvacuation({ node, vms: ready, hosts: f.hosts, mode, nodeSelector: e.spec.target?.nodeSelector, avoid, strategies: f.strategies }) : [];
  const person = settleInPlace(f, steps, rows, d, actions, events);
  const created = movesToCreate(e.metadata.name ?? '', node, rows, steps, Math.max(0, maxParallel - active));
  actions.create.push(...created.values());
  const gaveUp = givenUp(rows, steps, open.length + created.size > 0);

  const { counts, moves } = tally(rows, created, gaveUp);
  const plan = planRows(steps, created, waiting, person.settled);
  // Recovering a dead host's VMs: it is dead, or was when one of their moves was made (a dead host's moves are Rebuild mode).
  const recovered = host.state === 'Dead' || rows.some((r) => r.standing.latest?.spec.mode === 'Rebuild');
  const stopped = rows.filter((r) => r.standing.kind === 'Done' && r.standing.stopped).length;
  const { phase, message } = phaseOf({ node, host, counts, gaveUp, creating: created.size, hold, recovered, latest: rows.map((r) => r.standing.latest), cordoned: d.get('Cordoned'), stopped, waitsForPerson: person.waiting });
  setPhaseConditions(d, phase, message, recovered);
  // Only a person moves an evacuation on whose every VM left waits for one (evacuationStrategy None).
  if (phase === 'Evacuating' && person.waiting.length && person.waiting.length === counts.pending && counts.inProgress === 0 && created.size === 0) {
    d.standing(phase, { state: 'stalled', reason: 'WaitingForPerson', message });
  }
  events.push(...phaseEvents(d.prev.phase, phase, message, node));

  const final = isFinal(phase);
  const hostState = knownHostState(host) ?? d.prev.hostState;
  const waitingForHost = phase === 'WaitingForFence' || phase === 'Pending';
  return {
    status: {
      phase,
      ...(hostState ? { hostState } : {}),
      ...counts,
      moves,
      ...(plan.length ? { plan } : {}),
      startTime: d.prev.startTime ?? now,
      ...(final ? { completionTime: now } : {}),
      observedGeneration: e.metadata.generation,
      conditions: d.conditions,
      message,
    },
    actions,
    events,
    ...(final ? {} : { requeueAfterMs: waitingForHost ? 5_000 : 10_000 }),
  };
}
