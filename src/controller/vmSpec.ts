// The VM as the agents see it, built from a VirtualMachine and the resources a step runs it with.
import type { VirtualMachine } from '../api/types';
import { parseBytes } from '../api/quantity';
import { vmId, type VmSpec } from '../protocol/vm';

/**
 * Only vmove's own annotations (the sim's guest model) travel to the hosts: an operation's body
 * must not change while it is retried, and `kubectl apply` rewrites its own annotation freely.
 */
function hostAnnotations(vm: VirtualMachine): Record<string, string> | undefined {
  const picked = Object.entries(vm.metadata.annotations ?? {}).filter(([k]) => /(^|\.)vmove\.dev\//.test(k));
  return picked.length ? Object.fromEntries(picked) : undefined;
}

export function vmSpecFor(vm: VirtualMachine, resources: { cpu: number; memoryBytes: number }): VmSpec {
  return {
    id: vmId(vm.metadata.namespace ?? 'default', vm.metadata.name ?? ''),
    uid: vm.metadata.uid ?? '',
    image: vm.spec.image,
    cpu: resources.cpu,
    memoryBytes: resources.memoryBytes,
    disks: (vm.spec.disks ?? []).map((d) => ({ name: d.name, sizeBytes: parseBytes(d.size), storage: d.storage })),
    ...(vm.spec.kernelArgs ? { kernelArgs: vm.spec.kernelArgs } : {}),
    ...(hostAnnotations(vm) ? { annotations: hostAnnotations(vm) } : {}),
  };
}
