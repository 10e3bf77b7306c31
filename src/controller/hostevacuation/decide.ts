// What one HostEvacuation should do next, and what its status says. Pure: the reconciler observes
// (the evacuation, its node and host, the VMs on it, the MoveRequests it owns, the hosts to plan
// over), this decides (cordon, create, cancel, delete, uncordon, let go) and the reconciler acts.
import type { EvacuationMove, EvacuationPhase, MoveRequest, VirtualMachine } from '../../api/types';
import { isTerminal } from '../../machines/vocabulary';
import { OUT_OF_SERVICE_TAINT } from '../clusterView';
import { findCondition } from '../conditions';
import { dryRun } from './dryRun';
import { classifyHost, fenceHint, howToMove, knownHostState, type HostState } from './hostState';
import { moveName } from './names';
import { cordon, fencing, uncordon } from './nodeConditions';
import { planEvacuation, plannedMove, type PlanStep } from './planner';
import { standingOf, type Standing } from './standing';
import { StatusDraft } from './statusDraft';
import { latestRows, moveRow, newMoveRow, plural, successMessage } from './status';
import type { EvacuationActions, EvacuationDecision, EvacuationFacts, EventNote, MoveRef, NewMove } from './types';
import { evacuates, vmKey, vmKeyOfMove } from './vms';

/** Retries per VM when spec.maxRetries is not set. */
export const DEFAULT_MAX_RETRIES = 2;
export const DEFAULT_MAX_PARALLEL = 2;
/** Failed and given-up VMs named in status.message (the rest are in status.moves and status.plan). */
const NAMED_IN_MESSAGE = 5;

const FINAL: readonly EvacuationPhase[] = ['Succeeded', 'Failed', 'Cancelled'];
export const isFinal = (phase: EvacuationPhase | undefined): boolean => !!phase && FINAL.includes(phase);
const open = (mr: MoveRequest): boolean => !(mr.status?.phase && isTerminal(mr.status.phase));
const ref = (mr: MoveRequest): MoveRef => ({ namespace: mr.metadata.namespace ?? 'default', name: mr.metadata.name ?? '' });

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
  const prevPhase = d.prev.phase;

  cordon(f, d, actions, events);
  fencing(f, host, d, events);

  // Moves that have not started and can no longer do what they were made for.
  for (const mr of f.moves) {
    if (!open(mr) || mr.spec.cancel || (mr.status?.phase && mr.status.phase !== 'Pending')) continue;
    if (host.state === 'Dead' && mr.spec.mode !== 'Rebuild') {
      actions.cancel.push({ ...ref(mr), why: `${node} died before this move started; the VM is recovered by a rebuild instead` });
    } else if (mr.status?.sourceNode && mr.status.sourceNode !== node) {
      actions.cancel.push({ ...ref(mr), why: `the VM left ${node} (it is on ${mr.status.sourceNode}) before this move started` });
    }
  }
  for (const c of actions.cancel) events.push({ type: 'Normal', reason: 'MoveCancelled', message: `MoveRequest ${c.namespace}/${c.name}: ${c.why}` });

  // Where each VM stands.
  const vmByKey = new Map(f.vms.map((vm) => [vmKey(vm), vm]));
  const movesByVm = new Map<string, MoveRequest[]>();
  for (const mr of f.moves) {
    const k = vmKeyOfMove(mr);
    movesByVm.set(k, [...(movesByVm.get(k) ?? []), mr]);
  }
  const keys = new Set<string>(movesByVm.keys());
  for (const vm of f.vms) if (evacuates(e.spec, vm)) keys.add(vmKey(vm));
  const rows: { key: string; vm?: VirtualMachine; standing: Standing }[] = [];
  for (const key of [...keys].sort()) {
    const standing = standingOf(vmByKey.get(key), movesByVm.get(key) ?? [], node, maxRetries);
    if (standing) rows.push({ key, vm: vmByKey.get(key), standing });
  }

  const { mode: moveMode, hold } = howToMove(host, e.spec.mode ?? 'Auto', node);

  const ownUids = new Set(f.moves.map((m) => m.metadata.uid));
  const waiting = new Map<string, string>();
  const ready: VirtualMachine[] = [];
  const avoid = new Map<string, string[]>();
  for (const r of rows) {
    if (r.standing.kind !== 'ToMove' || !r.vm) continue;
    const holder = r.vm.status?.moveRef;
    if (hold) waiting.set(r.key, hold);
    else if (holder && !ownUids.has(holder.uid)) waiting.set(r.key, `waiting: the VM is being moved by MoveRequest ${holder.name}`);
    else if (host.state === 'Alive' && !r.vm.status?.nodeName) waiting.set(r.key, `waiting: the VM has not started on ${node} yet`);
    else {
      ready.push(r.vm);
      avoid.set(r.key, r.standing.avoid);
    }
  }

  const active = f.moves.filter(open).length;
  const steps = moveMode ? planEvacuation({ node, vms: ready, hosts: f.hosts, mode: moveMode, nodeSelector: e.spec.target?.nodeSelector, avoid }) : [];
  let slots = Math.max(0, maxParallel - active);
  const created = new Map<string, NewMove>();
  for (const s of steps) {
    if (slots === 0) break;
    if (!s.targetNode || !s.spec) continue;
    const key = `${s.namespace}/${s.vmName}`;
    const st = rows.find((r) => r.key === key)!.standing as Extract<Standing, { kind: 'ToMove' }>;
    const name = moveName(e.metadata.name ?? '', s.vmName, st.attempt);
    const m: NewMove = { namespace: s.namespace, name, vmName: s.vmName, attempt: st.attempt, spec: s.spec, step: s, events: [], ...(st.retry ? { retry: st.retry } : {}) };
    m.events.push(
      m.retry
        ? { type: 'Warning', reason: 'Retrying', message: `${key}: attempt ${m.attempt} (${s.moveType}, ${s.variant}) to ${s.targetNode} as MoveRequest ${name}, after: ${m.retry}` }
        : { type: 'Normal', reason: 'MoveCreated', message: `${key}: ${s.moveType} (${s.variant}) to ${s.targetNode} as MoveRequest ${name}` },
    );
    if (s.variant === 'FromImage') m.events.push({ type: 'Warning', reason: 'LocalDataLost', message: `${key} is rebuilt from its image ${s.vm.spec.image} on ${s.targetNode}: the data on its local disks, left on dead ${node}, is lost` });
    actions.create.push(m);
    created.set(key, m);
    slots--;
  }

  // Unplaceable VMs wait while the evacuation's own moves may still change the picture, or while
  // only moves in flight hold the room they need; otherwise they are given up on.
  const busy = active + created.size > 0;
  const unplaced = new Map<string, PlanStep>();
  for (const s of steps) if (!s.targetNode) unplaced.set(`${s.namespace}/${s.vmName}`, s);
  const gaveUp = new Map<string, string>();
  for (const r of rows) {
    if (r.standing.kind === 'GaveUp') gaveUp.set(r.key, r.standing.reason);
    const s = unplaced.get(r.key);
    if (s && (s.impossible || (!busy && !s.waitable))) gaveUp.set(r.key, s.reason);
  }

  // Counts and rows.
  let succeeded = 0;
  let inProgress = 0;
  let pending = 0;
  const moves: EvacuationMove[] = [];
  for (const r of rows) {
    const st = r.standing;
    const latest = 'latest' in st ? st.latest : undefined;
    if (gaveUp.has(r.key)) {
      if (latest) moves.push(moveRow(latest, gaveUp.get(r.key)!));
      continue;
    }
    if (st.kind === 'Done') succeeded++;
    else if (st.kind === 'Moving' && st.started) inProgress++;
    else pending++;
    const c = created.get(r.key);
    if (c) moves.push(newMoveRow(c));
    else if (latest) moves.push(moveRow(latest, st.kind === 'ToMove' && st.retry ? `to be retried: ${st.retry}` : undefined));
  }
  const failed = gaveUp.size;
  const total = succeeded + failed + inProgress + pending;

  // Plan rows: the VMs that do not move yet, in order, then those that wait for something else.
  const planRows = steps.filter((s) => !created.has(`${s.namespace}/${s.vmName}`)).map((s) => plannedMove(s, false));
  for (const [key, why] of waiting) {
    const vm = vmByKey.get(key)!;
    planRows.push({ namespace: vm.metadata.namespace ?? 'default', vmName: vm.metadata.name ?? '', order: 0, reason: why });
  }
  planRows.forEach((p, i) => (p.order = i + 1));

  // Phase, conditions, message.
  let phase: EvacuationPhase;
  let message: string;
  const done = pending === 0 && inProgress === 0;
  const recovered = host.state === 'Dead' || rows.some((r) => 'latest' in r.standing && r.standing.latest?.spec.mode === 'Rebuild');
  if (done && failed === 0) {
    phase = 'Succeeded';
    message = successMessage(rows.map((r) => ('latest' in r.standing ? r.standing.latest : undefined)), node, recovered, d.get('Cordoned'));
  } else if (done) {
    phase = 'Failed';
    const named = [...gaveUp].slice(0, NAMED_IN_MESSAGE).map(([k, why]) => `${k}: ${why}`);
    const more = failed > NAMED_IN_MESSAGE ? `; and ${failed - NAMED_IN_MESSAGE} more (see status.moves and status.plan)` : '';
    message = `${failed} of ${plural(total, 'VM')} could not be moved off ${node} — ${named.join('; ')}${more}`;
  } else if (host.state === 'Dead' && !host.fenced) {
    phase = 'WaitingForFence';
    message = `${host.why}. vmove does not start its ${plural(pending, 'VM')} elsewhere while they might still run there: ${fenceHint(node)}`;
  } else if (host.state === 'Unreachable' && inProgress === 0 && created.size === 0) {
    phase = 'Pending';
    message = `waiting: ${host.why}`;
  } else {
    phase = 'Evacuating';
    const verb = recovered ? 'recovered from' : 'moved off';
    message = `${succeeded} of ${plural(total, 'VM')} ${verb} ${node}; ${inProgress} moving, ${pending} waiting${failed ? `, ${failed} could not be moved` : ''}`;
    if (hold && pending) message += ` (${hold})`;
  }

  const final = isFinal(phase);
  d.set(
    final
      ? { type: 'Progressing', status: 'False', reason: phase, message }
      : phase === 'Evacuating'
        ? { type: 'Progressing', status: 'True', reason: recovered ? 'Recovering' : 'Evacuating', message }
        : { type: 'Progressing', status: 'False', reason: phase === 'WaitingForFence' ? 'WaitingForFence' : 'HostUnreachable', message },
  );
  d.set(phase === 'Succeeded' ? { type: 'Ready', status: 'True', reason: 'NodeEmpty', message } : { type: 'Ready', status: 'False', reason: phase, message: final ? message : `the evacuation is ${phase}` });

  if (phase !== prevPhase) {
    if (phase === 'WaitingForFence') events.push({ type: 'Warning', reason: 'WaitingForFence', message });
    if (prevPhase === 'WaitingForFence' && phase !== 'Failed') events.push({ type: 'Normal', reason: 'Fenced', message: `${node} is fenced (${OUT_OF_SERVICE_TAINT}): recovering its VMs elsewhere` });
    if (phase === 'Pending' && prevPhase) events.push({ type: 'Warning', reason: 'HostUnreachable', message });
    if (phase === 'Succeeded') events.push({ type: 'Normal', reason: 'Succeeded', message });
    if (phase === 'Failed') events.push({ type: 'Warning', reason: 'Failed', message });
  }

  const hostState = knownHostState(host) ?? d.prev.hostState;
  const waitingForHost = phase === 'WaitingForFence' || phase === 'Pending';
  return {
    status: {
      phase,
      ...(hostState ? { hostState } : {}),
      total,
      succeeded,
      failed,
      inProgress,
      pending,
      moves,
      ...(planRows.length ? { plan: planRows } : {}),
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

// ---------------------------------------------------------------- cancel, delete

function cancelling(f: EvacuationFacts, d: StatusDraft, actions: EvacuationActions, events: EventNote[]): EvacuationDecision {
  const e = f.evacuation;
  const now = f.now.toISOString();
  const running = f.moves.filter(open);
  for (const mr of running) if (!mr.spec.cancel) actions.cancel.push({ ...ref(mr), why: 'the evacuation was cancelled' });
  const moves = latestRows(f.moves);
  const moved = moves.filter((m) => m.phase === 'Succeeded').length;
  if (running.length) {
    const message = `cancelling: ${plural(running.length, 'move')} stop${running.length === 1 ? 's' : ''} (each rolls back, or finishes if the VM already runs on its target)`;
    d.set({ type: 'Progressing', status: 'True', reason: 'Cancelling', message });
    if (findCondition(d.prev.conditions, 'Progressing')?.reason !== 'Cancelling') events.push({ type: 'Normal', reason: 'Cancelling', message });
    return { status: { ...d.prev, moves, inProgress: running.length, observedGeneration: e.metadata.generation, conditions: d.conditions, message }, actions, events, requeueAfterMs: 5_000 };
  }
  const cordonNote = uncordon(f, d, actions, events);
  const message = `cancelled: ${plural(moved, 'VM')} had been moved off ${e.spec.nodeName}; the others stay where they are${cordonNote ? `; ${cordonNote}` : ''}`;
  d.set({ type: 'Progressing', status: 'False', reason: 'Cancelled', message });
  d.set({ type: 'Ready', status: 'False', reason: 'Cancelled', message });
  events.push({ type: 'Normal', reason: 'Cancelled', message });
  return {
    status: { ...d.prev, phase: 'Cancelled', moves, succeeded: moved, inProgress: 0, pending: 0, startTime: d.prev.startTime ?? now, completionTime: now, observedGeneration: e.metadata.generation, conditions: d.conditions, message },
    actions,
    events,
  };
}

function deleting(f: EvacuationFacts, d: StatusDraft, actions: EvacuationActions, events: EventNote[]): EvacuationDecision {
  // Deleting a MoveRequest cancels it (its own finalizer waits for the rollback), so the
  // evacuation deletes what it owns and lets go once all of it is gone.
  for (const mr of f.moves) if (!mr.metadata.deletionTimestamp) actions.delete.push(ref(mr));
  if (f.moves.length) {
    const message = `deleting: waiting for ${plural(f.moves.length, 'MoveRequest')} of this evacuation to stop and go`;
    d.set({ type: 'Progressing', status: 'True', reason: 'Deleting', message });
    return { status: { ...d.prev, conditions: d.conditions, message }, actions, events, requeueAfterMs: 2_000 };
  }
  const cordonNote = uncordon(f, d, actions, events);
  actions.release = true;
  return { status: { ...d.prev, conditions: d.conditions, ...(cordonNote ? { message: `deleted; ${cordonNote}` } : {}) }, actions, events };
}
