// What an evacuation's status says about its VMs: one row per VM (its latest MoveRequest) and the
// sentence that ends a successful evacuation. Pure.
import type { Condition, EvacuationMove, MoveRequest } from '../../api/types';
import { traitsOf } from '../../machines/traits';
import type { NewMove } from './types';
import { attemptOf } from './names';
import { vmKeyOfMove } from './vms';

export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

export function successMessage(latest: (MoveRequest | undefined)[], node: string, recovered: boolean, cordoned: Condition | undefined): string {
  const moved = latest.filter((m): m is MoveRequest => !!m && m.status?.phase === 'Succeeded');
  const count = (pred: (m: MoveRequest) => boolean) => moved.filter(pred).length;
  const tail = cordoned?.reason === 'CordonedByVmove' ? `; ${node} stays cordoned while this HostEvacuation exists (delete it to uncordon)` : '';
  if (moved.length === 0) return `${node} has no VMs to move${tail}`;
  if (recovered) {
    const shared = count((m) => m.status?.variant === 'FromSharedDisk');
    const image = count((m) => m.status?.variant === 'FromImage');
    // A move that needs the source's agent ran while the host was still alive.
    const before = count((m) => !traitsOf(m.status?.moveType).startsFromFencedSource);
    const parts = [
      shared ? `${plural(shared, 'VM')} restarted from ${shared === 1 ? 'its' : 'their'} shared disks` : '',
      image ? `${plural(image, 'VM')} rebuilt from ${image === 1 ? 'its' : 'their'} image — the data on ${image === 1 ? 'its' : 'their'} local disks was lost` : '',
      before ? `${plural(before, 'VM')} moved before the host died` : '',
    ].filter(Boolean);
    return `recovered the VMs of ${node}: ${parts.join('; ')}${tail}`;
  }
  // The sentence names the move types: these comparisons are its words, not decisions.
  const live = count((m) => m.status?.moveType === 'Live');
  const cold = count((m) => m.status?.moveType === 'Cold');
  const other = moved.length - live - cold;
  const how = [live ? `${live} live` : '', cold ? `${cold} cold` : '', other ? `${other} rebuilt` : ''].filter(Boolean).join(', ');
  return `${node} is empty: ${plural(moved.length, 'VM')} moved off (${how})${tail}`;
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
