// Which HostEvacuations to look at again when something changes: the evacuation itself, one of
// its MoveRequests, a VM on (or leaving) its node, its node or its agent. Only keys.
import type { HostEvacuation, MoveRequest, VirtualMachine } from '../../api/types';
import type { Watch, Watchable } from '../../kube/controller';
import type { ClusterView } from '../clusterView';
import { EVACUATION_LABEL } from './names';
import { isFinal } from './phase';
import { vmHost } from './vms';

/** Changes within this window are folded into one reconcile (a burst of move updates is common). */
const BATCH_MS = 200;

export function evacuationWatches(view: ClusterView, hosts: Watchable<string>): Watch<never>[] {
  const active = (e: HostEvacuation): boolean => !isFinal(e.status?.phase) || !!e.metadata.deletionTimestamp;
  const onNode = (node: string | undefined): string[] => (node ? view.evacuations.list().filter((e) => e.spec.nodeName === node && active(e)) : []).map((e) => e.metadata.name ?? '');
  const evacuations: Watch<HostEvacuation> = { informer: view.evacuations, toKeys: (e, change) => (change.deleted ? [] : [e.metadata.name ?? '']) };
  const owner = (mr: MoveRequest): string[] => {
    const name = mr.metadata.labels?.[EVACUATION_LABEL];
    return name ? [name] : [];
  };
  const moves: Watch<MoveRequest> = { informer: view.moves, toKeys: owner, delayMs: BATCH_MS };
  const vms: Watch<VirtualMachine> = {
    informer: view.vms,
    toKeys: (vm, change) => {
      const before = !change.deleted && change.old ? vmHost(change.old) : undefined;
      return [...onNode(vmHost(vm)), ...(!change.deleted && before !== vmHost(vm) ? onNode(before) : [])];
    },
    delayMs: BATCH_MS,
  };
  const hostChanged: Watch<string> = { informer: hosts, toKeys: onNode, delayMs: BATCH_MS };
  return [evacuations, moves, vms, hostChanged];
}
