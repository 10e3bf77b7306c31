// Which VirtualMachines to look at again when something changes: the VM itself, and the VMs on
// (or placed on, or not yet placed anywhere) a host whose agent or Node changed. Only keys.
import type { VirtualMachine } from '../../api/types';
import type { Watch, Watchable } from '../../kube/controller';
import { keyOf } from '../../kube/paths';
import type { ClusterView } from '../clusterView';

export function vmWatches(view: ClusterView, hosts: Watchable<string>): Watch<never>[] {
  const vms: Watch<VirtualMachine> = { informer: view.vms, toKeys: (vm, change) => (change.deleted ? [] : [keyOf(vm)]) };
  const hostChanged: Watch<string> = {
    informer: hosts,
    toKeys: (node) =>
      view.vms
        .list()
        .filter((vm) => vm.status?.nodeName === node || vm.status?.scheduledNode === node || !vm.status?.scheduledNode)
        .map(keyOf),
  };
  return [vms, hostChanged];
}
