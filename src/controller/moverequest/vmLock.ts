// One move per VM at a time: VirtualMachine.status.moveRef names the MoveRequest that holds it.
// Taking it is a write conditional on the VM's resourceVersion, so of two requests racing for one
// VM exactly one wins; letting it go records where the VM runs now and with what.
import type { MoveRequest, VirtualMachine, VirtualMachinePhase } from '../../api/types';
import { formatBytes } from '../../api/quantity';
import { isConflict } from '../../kube/api';
import type { CachedWriter } from '../../kube/cachedWriter';
import { moveRecordOf, traitsOf } from '../../machines';

/** Take the VM for this move, only if nobody holds it; false when another request won the race. */
export async function lockVm(vms: CachedWriter<VirtualMachine>, mr: MoveRequest, vm: VirtualMachine): Promise<boolean> {
  try {
    await vms.patch(vm, { status: { moveRef: { name: mr.metadata.name, uid: mr.metadata.uid } } }, { subresource: 'status' });
    return true;
  } catch (e) {
    if (isConflict(e)) return false;
    throw e;
  }
}

/**
 * The phase a VM shown as Moving has once its move succeeded: it runs (or stays stopped) on the
 * target. After a failure the hosts' reports decide: a rollback that could not finish, or an
 * earlier attempt's, may have left the VM elsewhere than the record of the last attempt says.
 * Pure.
 */
export function phaseAfterMove(moveEnd: MoveRequest['status'], vmPhase: VirtualMachinePhase | undefined): VirtualMachinePhase | undefined {
  const persisted = moveRecordOf(moveEnd);
  if (vmPhase !== 'Moving' || moveEnd?.phase !== 'Succeeded' || !persisted) return undefined;
  return persisted.context.vmRunning ? 'Running' : 'Stopped';
}

/**
 * Let the VM go when its move ended; a successful one also records where and how the VM runs now.
 * The phase is set here too, so the VM does not show Moving until its host's next report.
 */
export async function releaseVm(vms: CachedWriter<VirtualMachine>, mr: MoveRequest, vm: VirtualMachine | undefined): Promise<void> {
  if (!vm || vm.status?.moveRef?.uid !== mr.metadata.uid) return;
  const persisted = moveRecordOf(mr.status);
  const succeeded = mr.status?.phase === 'Succeeded' && persisted;
  const moved = succeeded && !traitsOf(persisted.type).sameHost && mr.status?.targetNode;
  // Before its host's next report: the next request for this VM starts from these.
  const size = succeeded ? { cpu: persisted.context.after.cpu, memory: formatBytes(persisted.context.after.memoryBytes) } : {};
  const phase = phaseAfterMove(mr.status, vm.status?.phase);
  await vms.patch(
    vm,
    {
      status: {
        moveRef: null,
        ...size,
        ...(moved ? { scheduledNode: mr.status?.targetNode, nodeName: mr.status?.targetNode } : {}),
        ...(phase ? { phase } : {}),
      },
    },
    { subresource: 'status' },
  );
}
