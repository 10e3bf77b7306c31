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
import { planEvacuation } from './planner';
import { readyToMove, vmRows } from './rows';
import { StatusDraft } from './statusDraft';
import { cancelling, deleting } from './stopping';
import { planRows, tally } from './tally';
import type { EvacuationActions, EvacuationDecision, EvacuationFacts, EventNote } from './types';

/** Retries per VM when spec.maxRetries is not set. */
export const DEFAULT_MAX_RETRIES = 2;
export const DEFAULT_MAX_PARALLEL = 2;

export function decideEvacuation(f: EvacuationFacts): EvacuationDecision {
  const e = f.evacuation;
  const prev = e.status ?? {};
  const now = f.now.toISOString();
  const draft = new StatusDraft(prev, now, e.metadata.generation);
  const actions: EvacuationActions = { create: [], cancel: [], delete: [], release: false };
  const events: EventNote[] = [];
  const host = classifyHost(f.host, f.deadHostAfterSeconds, e.spec.nodeName);

  if (e.metadata.deletionTimestamp) return deleting(f, draft, actions, events);
  if (isFinal(prev.phase)) return { status: prev, actions, events };
  if (e.spec.dryRun) return dryRun(f, host, draft, events);
  if (e.spec.cancel) return cancelling(f, draft, actions, events);
  return evacuating(f, host, draft, actions, events);
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
  const rows = vmRows(f, maxRetries);
  const { mode, hold } = howToMove(host, e.spec.mode ?? 'Auto', node);
  const { ready, avoid, waiting } = readyToMove(rows, f, host, hold);
  const active = f.moves.filter(isOpen).length;
  const steps = mode ? planEvacuation({ node, vms: ready, hosts: f.hosts, mode, nodeSelector: e.spec.target?.nodeSelector, avoid }) : [];
  const created = movesToCreate(e.metadata.name ?? '', node, rows, steps, Math.max(0, maxParallel - active));
  actions.create.push(...created.values());
  const gaveUp = givenUp(rows, steps, active + created.size > 0);

  const { counts, moves } = tally(rows, created, gaveUp);
  const plan = planRows(steps, created, waiting);
  // Recovering a dead host's VMs: it is dead, or was when one of their moves was made (a dead host's moves are Rebuild mode).
  const recovered = host.state === 'Dead' || rows.some((r) => r.standing.latest?.spec.mode === 'Rebuild');
  const { phase, message } = phaseOf({ node, host, counts, gaveUp, creating: created.size, hold, recovered, latest: rows.map((r) => r.standing.latest), cordoned: d.get('Cordoned') });
  setPhaseConditions(d, phase, message, recovered);
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
