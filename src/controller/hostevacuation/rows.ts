// The VMs of an evacuation, one row each with where it stands (standing.ts), and which of those
// still to move can be planned now — or what each waits for. Pure.
import type { MoveRequest, VirtualMachine } from '../../api/types';
import type { HostState } from './hostState';
import { standingOf, type Standing } from './standing';
import type { EvacuationFacts } from './types';
import { evacuates, vmKey, vmKeyOfMove } from './vms';

export interface VmRow {
  /** namespace/name */
  key: string;
  /** Undefined: the VM is gone. */
  vm?: VirtualMachine;
  standing: Standing;
}

/** A VM still to move that waits for something else first, and what. */
export interface Waiting {
  vm: VirtualMachine;
  why: string;
}

/**
 * One row per VM the evacuation concerns — those it picks on the node, and those it made moves for — by key.
 * A VM whose strategy is Shutdown is done once it is stopped on the node (or wanted stopped there
 * while the host is not alive: nothing runs on a dead host, and it stays stopped if the host returns).
 */
export function vmRows(f: EvacuationFacts, maxRetries: number, hostAlive = true): VmRow[] {
  const e = f.evacuation;
  const vmByKey = new Map(f.vms.map((vm) => [vmKey(vm), vm]));
  const movesByVm = new Map<string, MoveRequest[]>();
  for (const mr of f.moves) {
    const k = vmKeyOfMove(mr);
    movesByVm.set(k, [...(movesByVm.get(k) ?? []), mr]);
  }
  const keys = new Set<string>(movesByVm.keys());
  for (const vm of f.vms) if (evacuates(e.spec, vm)) keys.add(vmKey(vm));
  const rows: VmRow[] = [];
  for (const key of [...keys].sort()) {
    const vm = vmByKey.get(key);
    let standing = standingOf(vm, movesByVm.get(key) ?? [], e.spec.nodeName, maxRetries);
    if (vm && standing?.kind === 'ToMove' && f.strategies?.get(key)?.strategy === 'Shutdown' && stoppedInPlace(vm, hostAlive)) {
      standing = { kind: 'Done', stopped: true, ...(standing.latest ? { latest: standing.latest } : {}) };
    }
    if (standing) rows.push({ key, vm, standing });
  }
  return rows;
}

export const stoppedInPlace = (vm: VirtualMachine, hostAlive: boolean): boolean => vm.spec.running === false && (vm.status?.phase === 'Stopped' || !hostAlive);

/**
 * Which VMs still to move can be planned now, with the hosts each should avoid (by key). The
 * others wait: for the host (`hold`: why its state holds every move), for another MoveRequest
 * that holds the VM, or, on a live host, for the VM to start there.
 */
export function readyToMove(rows: VmRow[], f: EvacuationFacts, host: HostState, hold: string | undefined): { ready: VirtualMachine[]; avoid: Map<string, string[]>; waiting: Waiting[] } {
  const node = f.evacuation.spec.nodeName;
  const ownUids = new Set(f.moves.map((m) => m.metadata.uid));
  const ready: VirtualMachine[] = [];
  const avoid = new Map<string, string[]>();
  const waiting: Waiting[] = [];
  for (const r of rows) {
    if (r.standing.kind !== 'ToMove' || !r.vm) continue;
    const holder = r.vm.status?.moveRef;
    if (hold) waiting.push({ vm: r.vm, why: hold });
    else if (holder && !ownUids.has(holder.uid)) waiting.push({ vm: r.vm, why: `waiting: the VM is being moved by MoveRequest ${holder.name}` });
    else if (host.state === 'Alive' && !r.vm.status?.nodeName) waiting.push({ vm: r.vm, why: `waiting: the VM has not started on ${node} yet` });
    else {
      ready.push(r.vm);
      avoid.set(r.key, r.standing.avoid);
    }
  }
  return { ready, avoid, waiting };
}
