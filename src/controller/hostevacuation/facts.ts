// What an evacuation decides over, read from the controller's caches. The reconciler and
// `vmove plan` both read it here, so a dry run and the real thing see the same facts.
import type { HostEvacuation, VirtualMachine } from '../../api/types';
import type { ClusterView } from '../clusterView';
import { DEFAULT_POLICY } from '../config';
import type { ResolvedPolicy } from '../../machines/vocabulary';
import { strategies } from './strategy';
import { isOwnedBy } from './names';
import { isFinal } from './phase';
import { withPendingMoves } from './planner';
import type { EvacuationFacts } from './types';
import { vmHost, vmKey, vmKeyOfMove } from './vms';

/** Whether an evacuation still wants its node cordoned (it runs, cordons, and is no dry run). */
export const wantsCordon = (e: HostEvacuation): boolean => !isFinal(e.status?.phase) && !e.metadata.deletionTimestamp && e.spec.cordon !== false && !e.spec.dryRun && !e.spec.cancel;

export function observeEvacuation(v: ClusterView, e: HostEvacuation, deadHostAfterSeconds: number, now = new Date(), policyDefaults: ResolvedPolicy = DEFAULT_POLICY): EvacuationFacts {
  const node = e.spec.nodeName;
  const nodeObj = v.nodes.get(node);
  const hosts = v.hosts(now.getTime());
  const allMoves = v.moves.list();
  const moves = allMoves.filter((mr) => isOwnedBy(mr, e));
  const vms = new Map<string, VirtualMachine>();
  for (const vm of v.vms.list()) if (vmHost(vm) === node) vms.set(vmKey(vm), vm);
  for (const mr of moves) {
    const k = vmKeyOfMove(mr);
    const vm = vms.get(k) ?? v.vms.get(k);
    if (vm) vms.set(k, vm);
  }
  return {
    evacuation: e,
    now,
    node: { exists: !!nodeObj, unschedulable: !!nodeObj?.spec?.unschedulable },
    host: hosts.find((h) => h.node === node),
    hosts: withPendingMoves(hosts, allMoves, (k) => v.vms.get(k)),
    vms: [...vms.values()],
    moves,
    cordonWantedByOthers: v.evacuations.list().some((o) => o.metadata.uid !== e.metadata.uid && o.spec.nodeName === node && wantsCordon(o)),
    deadHostAfterSeconds,
    strategies: strategies([...vms.values()], { policies: v.movePolicies.list(), namespaceLabels: (ns) => v.namespaces.get(ns)?.metadata.labels, defaults: policyDefaults }),
  };
}
