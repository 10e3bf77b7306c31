// Which MoveRequests to look at again when something changes: the request itself; a VM's own
// requests when the VM changes or one of them ends; the oldest waiting requests when a slot or
// some capacity frees; the moves in flight on a host whose agent or Node changed. Only keys.
import type { MoveRequest, VirtualMachine } from '../../api/types';
import type { Watch, Watchable } from '../../kube/controller';
import { keyOf } from '../../kube/paths';
import { bytesAcross, isTerminal } from '../../machines/vocabulary';
import type { ClusterView } from '../clusterView';
import type { MoveLimits } from '../config';
import { DEFAULT_PRIORITY_AGING_SECONDS, effectiveRank } from '../limits';
import { vmKeyOf } from './facts';

export function moveWatches(view: ClusterView, hosts: Watchable<string>, limits: MoveLimits, agingSeconds = DEFAULT_PRIORITY_AGING_SECONDS): Watch<never>[] {
  // Which requests each VM has, so a VM's change wakes only its own requests.
  const requestsOfVm = new Map<string, Set<string>>();
  view.moves.on({
    onChange: (mr) => {
      const vmKey = vmKeyOf(mr);
      if (!requestsOfVm.has(vmKey)) requestsOfVm.set(vmKey, new Set());
      requestsOfVm.get(vmKey)!.add(keyOf(mr));
    },
    onDelete: (mr) => requestsOfVm.get(vmKeyOf(mr))?.delete(keyOf(mr)),
  });
  const requestsOf = (vmKey: string): string[] => [...(requestsOfVm.get(vmKey) ?? [])];
  /**
   * A slot or some capacity freed: the requests still waiting to start or to be placed, highest
   * priority (after aging) first, then the oldest.
   * Waking all of them on every change would cost O(requests²) with a thousand queued; the rest
   * look again on their own within seconds.
   */
  const waiting = (): string[] => {
    const now = Date.now();
    return view.moves
      .list()
      .filter((mr) => (!mr.status?.phase || mr.status.phase === 'Pending' || mr.status.phase === 'Scheduling') && view.ownsMove(mr))
      .map((mr) => ({ mr, since: mr.metadata.creationTimestamp ?? '', rank: effectiveRank(mr.spec.priority, mr.metadata.creationTimestamp ?? '', now, agingSeconds) }))
      .sort((a, b) => a.rank - b.rank || a.since.localeCompare(b.since))
      .slice(0, limits.parallelMoves * 2 + 8)
      .map((w) => keyOf(w.mr));
  };
  /** Moves in flight on a host. */
  const activeMovesOn = (node: string): string[] =>
    view.moves
      .list()
      .filter((mr) => !(mr.status?.phase && isTerminal(mr.status.phase)))
      .filter((mr) => mr.status?.sourceNode === node || mr.status?.targetNode === node)
      .map(keyOf);

  const moves: Watch<MoveRequest> = {
    informer: view.moves,
    toKeys: (mr, change) => {
      if (change.deleted) return [...waiting(), ...requestsOf(vmKeyOf(mr))];
      const phase = mr.status?.phase;
      const was = change.old?.status?.phase;
      // Ended, admitted/placed, or its bytes are across (its stream freed): limits and capacity changed for the others.
      const changesOthers = phase === undefined || isTerminal(phase) || was === 'Pending' || was === 'Scheduling' || (bytesAcross(phase) && !bytesAcross(was));
      if (phase === was || !changesOthers) return [keyOf(mr)];
      return [keyOf(mr), ...waiting(), ...(phase && isTerminal(phase) ? requestsOf(vmKeyOf(mr)) : [])];
    },
  };
  const vms: Watch<VirtualMachine> = { informer: view.vms, toKeys: (vm) => requestsOf(keyOf(vm)) };
  const hostChanged: Watch<string> = { informer: hosts, toKeys: activeMovesOn };
  return [moves, vms, hostChanged];
}
