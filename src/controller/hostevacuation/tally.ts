// What an evacuation's status counts and lists about its VMs: how many are moved, moving, waiting
// and given up; one row per VM in status.moves (its latest MoveRequest, or the one created now);
// and the VMs that do not move yet in status.plan. Pure.
import type { EvacuationMove, HostEvacuationStatus, MoveRequest, PlannedMove } from '../../api/types';
import { attemptOf } from './names';
import { plannedMove, type PlanStep } from './planner';
import type { VmRow, Waiting } from './rows';
import type { NewMove } from './types';
import { vmKey, vmKeyOfMove } from './vms';

/** `1 VM`, `2 VMs`: how a count reads in messages. */
export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

export type Counts = Required<Pick<HostEvacuationStatus, 'total' | 'succeeded' | 'failed' | 'inProgress' | 'pending'>>;

/**
 * The counts and status.moves. A VM given up on counts as failed, its row saying why; the others
 * count as succeeded, in progress (a move started) or pending, each row its latest MoveRequest.
 */
export function tally(rows: VmRow[], created: ReadonlyMap<string, NewMove>, gaveUp: ReadonlyMap<string, string>): { counts: Counts; moves: EvacuationMove[] } {
  let succeeded = 0;
  let inProgress = 0;
  let pending = 0;
  const moves: EvacuationMove[] = [];
  for (const r of rows) {
    const st = r.standing;
    const latest = st.latest;
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
  return { counts: { total: succeeded + failed + inProgress + pending, succeeded, failed, inProgress, pending }, moves };
}

/**
 * status.plan: the VMs that do not move yet, in plan order, then those that wait for something
 * else, then those stopped and left on the node (`settled`: they have no MoveRequest to show).
 */
export function planRows(steps: PlanStep[], created: ReadonlyMap<string, NewMove>, waiting: readonly Waiting[], settled: readonly PlannedMove[] = []): PlannedMove[] {
  const plan = steps.filter((s) => !created.has(vmKey(s.vm))).map((s) => plannedMove(s, false));
  for (const w of waiting) plan.push({ namespace: w.vm.metadata.namespace ?? 'default', vmName: w.vm.metadata.name ?? '', order: 0, reason: w.why, action: 'Wait' });
  plan.push(...settled.map((p) => ({ ...p })));
  plan.forEach((p, i) => (p.order = i + 1));
  return plan;
}

export function moveRow(mr: MoveRequest, note?: string): EvacuationMove {
  const s = mr.status;
  const lost = s?.variant === 'FromImage' ? (s.phase === 'Succeeded' ? 'rebuilt from its image: the data on its local disks was lost' : 'rebuilding from its image: the data on its local disks is lost') : undefined;
  const message = note ?? (lost && s?.phase !== 'Failed' && s?.phase !== 'Cancelled' ? `${lost}${s?.message ? ` (${s.message})` : ''}` : s?.message);
  const target = s?.targetNode ?? mr.spec.target?.nodeName;
  return {
    namespace: mr.metadata.namespace ?? 'default',
    name: mr.metadata.name ?? '',
    vmName: mr.spec.vmName,
    phase: s?.phase ?? 'Pending',
    ...(target ? { targetNode: target } : {}),
    ...(s?.moveType ? { moveType: s.moveType } : {}),
    attempt: attemptOf(mr),
    ...(message ? { message } : {}),
  };
}

export function newMoveRow(m: NewMove): EvacuationMove {
  return {
    namespace: m.namespace,
    name: m.name,
    vmName: m.vmName,
    phase: 'Pending',
    ...(m.step.targetNode ? { targetNode: m.step.targetNode } : {}),
    ...(m.step.moveType ? { moveType: m.step.moveType } : {}),
    attempt: m.attempt,
    message: m.retry ? `retry after: ${m.retry}` : m.step.variant === 'FromImage' ? 'to be rebuilt from its image: the data on its local disks is lost' : `planned: ${m.step.reason}`,
  };
}

/** One row per VM: its latest MoveRequest. */
export function latestRows(moves: MoveRequest[]): EvacuationMove[] {
  const latest = new Map<string, MoveRequest>();
  for (const mr of moves) {
    const k = vmKeyOfMove(mr);
    const cur = latest.get(k);
    if (!cur || attemptOf(mr) > attemptOf(cur)) latest.set(k, mr);
  }
  return [...latest.keys()].sort().map((k) => moveRow(latest.get(k)!));
}
