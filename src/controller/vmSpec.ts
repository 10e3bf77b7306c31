// The VM as the agents see it, built from a VirtualMachine and the resources a step runs it with.
import type { VirtualMachine } from '../api/types';
import { parseBytes } from '../api/quantity';
import { vmId } from '../agent/protocol';
import type { VmSpec } from '../drivers/driver';

export function vmSpecFor(vm: VirtualMachine, resources: { cpu: number; memoryBytes: number }): VmSpec {
  return {
    id: vmId(vm.metadata.namespace ?? 'default', vm.metadata.name ?? ''),
    uid: vm.metadata.uid ?? '',
    image: vm.spec.image,
    cpu: resources.cpu,
    memoryBytes: resources.memoryBytes,
    disks: (vm.spec.disks ?? []).map((d) => ({ name: d.name, sizeBytes: parseBytes(d.size), storage: d.storage })),
    ...(vm.spec.kernelArgs ? { kernelArgs: vm.spec.kernelArgs } : {}),
    ...(vm.metadata.annotations ? { annotations: vm.metadata.annotations } : {}),
  };
}
