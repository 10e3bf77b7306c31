// Reconciles one VirtualMachine's life outside moves: place a new VM and have its host define
// and start it, follow `running`, stop and undefine it on deletion, and say when its host is
// gone (Lost) instead of pretending it runs. While a MoveRequest holds the VM (status.moveRef),
// the move alone acts on it. What the VM runs as (node, phase, CPU, memory) is reported by the
// agent of its host; this controller writes only the placement, Pending/Lost and conditions.
// observe (facts.ts) → decide (decide.ts, pure) → act (write the status, record the Event, send
// the operation) → read the operation's answer (decide.ts) → say when to look again.
import type { VirtualMachine } from '../../api/types';
import { withFinalizer, type CleanedUp } from '../../kube/finalizer';
import { keyOf } from '../../kube/paths';
import type { ReconcileResult } from '../../kube/workQueue';
import { componentLogger } from '../../log';
import { askAgent } from '../agentOps';
import type { ControllerDeps } from '../deps';
import type { FollowedOperations } from '../followedOperations';
import { decideVm, decideVmDeletion, readVmDeletion, readVmOperation, type VmDecision, type VmOperation } from './decide';
import { observeVm } from './facts';

export const VM_FINALIZER = 'vmove.dev/vm-protection';
/** Looks one reconcile takes at most: one places the VM, the next records its host reachable, the third acts. */
const MAX_LOOKS = 3;

const next = (d: VmDecision): ReconcileResult => (d.requeueAfterMs !== undefined ? { requeueAfterMs: d.requeueAfterMs } : {});

export class VirtualMachineReconciler {
  private readonly log = componentLogger('virtualmachine');

  constructor(
    private readonly d: ControllerDeps,
    private readonly operations: FollowedOperations,
  ) {}

  readonly reconcile = async (key: string): Promise<ReconcileResult> => {
    const vm = this.d.view.vms.get(key);
    if (!vm) return {};
    return withFinalizer(this.d.writers.vms, VM_FINALIZER, vm, { apply: (vm) => this.live(vm), cleanup: (vm) => this.delete(vm) });
  };

  private async live(vm: VirtualMachine): Promise<ReconcileResult> {
    for (let i = 0; i < MAX_LOOKS; i++) {
      const d = decideVm(vm, observeVm(this.d.view, this.d.config, vm, new Date()));
      vm = await this.record(vm, d);
      if (d.again) continue;
      if (!d.operate) return next(d);
      const after = readVmOperation(vm, d.operate, await this.send(vm, d.operate), new Date());
      await this.record(vm, after);
      return next(after);
    }
    return { requeueAfterMs: 0 };
  }

  private async delete(vm: VirtualMachine): Promise<CleanedUp<VirtualMachine>> {
    let d = decideVmDeletion(vm, observeVm(this.d.view, this.d.config, vm, new Date()));
    await this.record(vm, d);
    if (d.operate) {
      d = readVmDeletion(d.operate, await this.send(vm, d.operate), VM_FINALIZER);
      await this.record(vm, d);
    }
    return d.released ? { cleaned: vm } : next(d);
  }

  /** Write what the decision says (the status, under the resourceVersion) and record its Event; answers the VM as written. */
  private async record(vm: VirtualMachine, d: VmDecision): Promise<VirtualMachine> {
    if (d.status) vm = await this.d.writers.vms.patch(vm, { status: d.status }, { subresource: 'status' });
    if (d.event) this.d.events.record(vm, d.event.type, d.event.reason, d.event.message);
    return vm;
  }

  private send(vm: VirtualMachine, op: VmOperation) {
    const call = { key: keyOf(vm), target: { endpoint: op.endpoint, node: op.node }, opId: op.opId, request: () => op.request };
    return askAgent(() => this.operations.call(call), this.log, { vm: vm.metadata.name, opId: op.opId, node: op.node });
  }
}
