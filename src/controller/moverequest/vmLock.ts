// One move per VM at a time: VirtualMachine.status.moveRef names the MoveRequest that holds it.
// Taking it is a write conditional on the VM's resourceVersion, so of two requests racing for one
// VM exactly one wins; letting it go records where the VM runs now and with what.
import type { MoveRequest, VirtualMachine } from '../../api/types';
import { formatBytes } from '../../api/quantity';
import { isConflict } from '../../kube/api';
import type { CachedWriter } from '../../kube/cachedWriter';
import type { PersistedMove } from '../../machines';

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

/** Let the VM go when its move ended; a successful one also records where and how the VM runs now. */
export async function releaseVm(vms: CachedWriter<VirtualMachine>, mr: MoveRequest, vm: VirtualMachine | undefined): Promise<void> {
  if (!vm || vm.status?.moveRef?.uid !== mr.metadata.uid) return;
  const persisted = mr.status?.machine as unknown as PersistedMove | undefined;
  const succeeded = mr.status?.phase === 'Succeeded' && persisted;
  const moved = succeeded && persisted.type !== 'ResizeInPlace' && mr.status?.targetNode;
  // Before its host's next report: the next request for this VM starts from these.
  const size = succeeded ? { cpu: persisted.context.after.cpu, memory: formatBytes(persisted.context.after.memoryBytes) } : {};
  await vms.patch(
    vm,
    { status: { moveRef: null, ...size, ...(moved ? { scheduledNode: mr.status?.targetNode, nodeName: mr.status?.targetNode } : {}) } },
    { subresource: 'status' },
  );
}
