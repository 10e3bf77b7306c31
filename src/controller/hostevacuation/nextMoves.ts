// What an evacuation does with MoveRequests on this look: cancel those overtaken before they
// started, create the next ones from the plan (at most maxParallel unfinished at a time), and give
// up on the VMs no host will take. Pure.
import type { MoveRequest } from '../../api/types';
import { isTerminal } from '../../machines/vocabulary';
import type { HostState } from './hostState';
import { moveName } from './names';
import type { PlanStep } from './planner';
import type { VmRow } from './rows';
import type { Standing } from './standing';
import type { EvacuationActions, EvacuationFacts, EventNote, MoveRef, NewMove } from './types';
import { vmKey } from './vms';

/** Not ended yet (a Pending move included). */
export const isOpen = (mr: MoveRequest): boolean => !(mr.status?.phase && isTerminal(mr.status.phase));
export const moveRef = (mr: MoveRequest): MoveRef => ({ namespace: mr.metadata.namespace ?? 'default', name: mr.metadata.name ?? '' });

/** Cancel the moves that have not started and can no longer do what they were made for. */
export function cancelOvertaken(f: EvacuationFacts, host: HostState, actions: EvacuationActions, events: EventNote[]): void {
  const node = f.evacuation.spec.nodeName;
  const overtaken: EvacuationActions['cancel'] = [];
  for (const mr of f.moves) {
    if (!isOpen(mr) || mr.spec.cancel || (mr.status?.phase && mr.status.phase !== 'Pending')) continue;
    if (host.state === 'Dead' && mr.spec.mode !== 'Rebuild') {
      overtaken.push({ ...moveRef(mr), why: `${node} died before this move started; the VM is recovered by a rebuild instead` });
    } else if (mr.status?.sourceNode && mr.status.sourceNode !== node) {
      overtaken.push({ ...moveRef(mr), why: `the VM left ${node} (it is on ${mr.status.sourceNode}) before this move started` });
    }
  }
  actions.cancel.push(...overtaken);
  for (const c of overtaken) events.push({ type: 'Normal', reason: 'MoveCancelled', message: `MoveRequest ${c.namespace}/${c.name}: ${c.why}` });
}

/** The plan's placed steps as new MoveRequests, in plan order, `slots` at most (by VM key). */
export function movesToCreate(evacuation: string, node: string, rows: VmRow[], steps: PlanStep[], slots: number): Map<string, NewMove> {
  const created = new Map<string, NewMove>();
  let left = slots;
  for (const s of steps) {
    if (left === 0) break;
    if (!s.targetNode || !s.spec) continue;
    const key = vmKey(s.vm);
    const st = rows.find((r) => r.key === key)!.standing as Extract<Standing, { kind: 'ToMove' }>;
    const name = moveName(evacuation, s.vmName, st.attempt);
    const m: NewMove = { namespace: s.namespace, name, vmName: s.vmName, attempt: st.attempt, spec: s.spec, step: s, events: [], ...(st.retry ? { retry: st.retry } : {}) };
    m.events.push(
      m.retry
        ? { type: 'Warning', reason: 'Retrying', message: `${key}: attempt ${m.attempt} (${s.moveType}, ${s.variant}) to ${s.targetNode} as MoveRequest ${name}, after: ${m.retry}` }
        : { type: 'Normal', reason: 'MoveCreated', message: `${key}: ${s.moveType} (${s.variant}) to ${s.targetNode} as MoveRequest ${name}` },
    );
    if (s.variant === 'FromImage') m.events.push({ type: 'Warning', reason: 'LocalDataLost', message: `${key} is rebuilt from its image ${s.vm.spec.image} on ${s.targetNode}: the data on its local disks, left on dead ${node}, is lost` });
    created.set(key, m);
    left--;
  }
  return created;
}

/**
 * The VMs given up on, and why (by key): those whose moves say so, and unplaceable ones.
 * Unplaceable VMs wait while the evacuation's own moves may still change the picture (`busy`:
 * some are unfinished or just created), or while only moves in flight hold the room they need;
 * otherwise they are given up on.
 */
export function givenUp(rows: VmRow[], steps: PlanStep[], busy: boolean): Map<string, string> {
  const unplaced = new Map<string, PlanStep>();
  // A VM to shut down or that waits for a person has no target by design: it is never given up on for that.
  for (const s of steps) if (!s.targetNode && s.action !== 'Shutdown' && s.action !== 'WaitForPerson') unplaced.set(vmKey(s.vm), s);
  const gaveUp = new Map<string, string>();
  for (const r of rows) {
    if (r.standing.kind === 'GaveUp') gaveUp.set(r.key, r.standing.reason);
    const s = unplaced.get(r.key);
    if (s && (s.impossible || (!busy && !s.waitable))) gaveUp.set(r.key, s.reason);
  }
  return gaveUp;
}
