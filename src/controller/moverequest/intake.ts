// Before a move's machine exists: is there a VM, is it free, whose turn is it, and which machine
// moves it. Pure. The move type is chosen when the request's turn comes, from where the VM is
// then — not from where it was when the request arrived.
import type { EffectivePolicy, MoveRequest, VirtualMachine } from '../../api/types';
import { startMove, traitsOf, type MoveState } from '../../machines';
import { chooseMove, vmRunning } from '../chooseMove';
import type { HostFacts } from '../clusterView';
import type { ControllerConfig } from '../config';
import { machinePolicy } from '../policy/resolve';
import { placeVm } from '../placement';
import { vmSpecFor } from '../vmSpec';

export type Intake =
  | { move: MoveState }
  | { ended: 'Failed' | 'Cancelled'; reason: string; message: string }
  | { waiting: { reason: string; message: string } };

export interface IntakeFacts {
  vm?: VirtualMachine;
  /** An unfinished request for the same VM made before this one. */
  earlierRequest?: string;
  hosts: HostFacts[];
  config: Pick<ControllerConfig, 'limits'>;
  /** The policy resolved for this request (status.effectivePolicy): intake reads it, not spec. */
  effective: EffectivePolicy;
}

const busy = (vmName: string, holder: string) => ({
  waiting: { reason: 'WaitingForVM', message: `VirtualMachine ${vmName} is being moved by MoveRequest ${holder}; this request starts when that one ends` },
});

export function decideIntake(mr: MoveRequest, f: IntakeFacts): Intake {
  const name = mr.spec.vmName;
  if (mr.spec.cancel) return { ended: 'Cancelled', reason: 'Cancelled', message: 'cancelled before the move started; nothing was touched' };
  const vm = f.vm;
  if (!vm) return { ended: 'Failed', reason: 'VMNotFound', message: `VirtualMachine ${name} does not exist in namespace ${mr.metadata.namespace}` };
  if (vm.metadata.deletionTimestamp) return { ended: 'Failed', reason: 'VMDeleting', message: `VirtualMachine ${name} is being deleted` };
  const holder = vm.status?.moveRef;
  if (holder && holder.uid !== mr.metadata.uid) return busy(name, holder.name);
  if (f.earlierRequest) return busy(name, f.earlierRequest);
  const sourceNode = vm.status?.nodeName ?? vm.status?.scheduledNode;
  if (!sourceNode || vm.status?.phase === 'Pending' || !vm.status?.phase) {
    return { waiting: { reason: 'VMNotReady', message: `VirtualMachine ${name} is not running or stopped on a host yet` } };
  }
  if (vm.status.phase === 'Failed') {
    const why = vm.status.conditions?.find((c) => c.type === 'Failed')?.message;
    return { ended: 'Failed', reason: 'VMFailed', message: `VirtualMachine ${name} is Failed${why ? `: ${why}` : ''}; fix or recreate it before moving it` };
  }
  const choice = chooseMove({ ...mr.spec, mode: f.effective.mode }, {
    vm,
    sourceNode,
    source: f.hosts.find((h) => h.node === sourceNode),
    probe: (needs, q) => placeVm(f.hosts, { needs, exclude: [sourceNode], inboundLimit: f.config.limits.inboundPerNode, ...q }),
  });
  if (!choice.ok) return { ended: 'Failed', reason: 'InvalidMove', message: choice.reason };
  const c = choice.choice;
  const localDiskBytes = vmSpecFor(vm, c.after).disks.filter((d) => d.storage === 'Local').reduce((s, d) => s + d.sizeBytes, 0);
  const live = traitsOf(c.moveType).live;
  const diskBytes = live && c.variant === 'SharedStorage' ? 0 : localDiskBytes;
  return {
    move: startMove({
      moveType: c.moveType,
      variant: c.variant,
      reason: c.reason,
      sourceNode,
      vmRunning: vmRunning(vm),
      before: c.before,
      after: c.after,
      policy: machinePolicy(f.effective),
      bytesToMove: (live ? c.before.memoryBytes : 0) + diskBytes,
      sharedDisks: vmSpecFor(vm, c.after).disks.some((d) => d.storage !== 'Local'),
    }),
  };
}
