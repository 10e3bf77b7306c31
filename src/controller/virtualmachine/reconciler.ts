// Reconciles one VirtualMachine's life outside moves: place a new VM and have its host define
// and start it, follow `running`, stop and undefine it on deletion, and say when its host is
// gone (Lost) instead of pretending it runs. While a MoveRequest holds the VM (status.moveRef),
// the move alone acts on it. What the VM runs as (node, phase, CPU, memory) is reported by the
// agent of its host; this controller writes only the placement, Pending/Lost and conditions.
import type { VirtualMachine, VirtualMachineStatus } from '../../api/types';

import type { OperationRequest, OperationStatus } from '../../agent/protocol';
import { withFinalizer, type CleanedUp } from '../../kube/finalizer';
import type { ReconcileResult } from '../../kube/workQueue';
import { componentLogger } from '../../log';
import { vmRunning, vmStorage, currentResources } from '../chooseMove';
import type { ControllerDeps } from '../deps';
import { findCondition, setCondition, type ConditionInput } from '../conditions';
import { placeVm } from '../placement';
import { vmSpecFor } from '../vmSpec';

export const VM_FINALIZER = 'vmove.dev/vm-protection';

export class VirtualMachineReconciler {
  private readonly log = componentLogger('virtualmachine');

  constructor(private readonly d: ControllerDeps) {}

  readonly reconcile = async (key: string): Promise<ReconcileResult> => {
    const vm = this.d.view.vms.get(key);
    if (!vm) return {};
    return withFinalizer(this.d.writers.vms, VM_FINALIZER, vm, { apply: (vm) => this.live(vm), cleanup: (vm) => this.delete(vm) });
  };

  private async live(vm: VirtualMachine): Promise<ReconcileResult> {
    const ref = vm.status?.moveRef;
    if (ref) {
      // A lock whose MoveRequest is gone (removed without its finalizer) must not hold the VM forever.
      const mr = this.d.view.moves.get(`${vm.metadata.namespace}/${ref.name}`);
      if (mr && mr.metadata.uid === ref.uid) return {};
      await this.patchStatus(vm, { moveRef: null } as unknown as VirtualMachineStatus);
      this.d.events.record(vm, 'Warning', 'StaleMoveRef', `MoveRequest ${ref.name} no longer exists; the VM is released`);
      return { requeueAfterMs: 0 };
    }

    let node = vm.status?.scheduledNode;
    if (!node) {
      const placed = await this.place(vm);
      if (!placed) return { requeueAfterMs: 10_000 };
      vm = placed.vm;
      node = placed.node;
    }

    const agent = this.d.view.agent(node);
    if (!agent?.alive) {
      const lost = !agent || agent.expiredForSeconds >= this.d.config.agentLostAfterSeconds;
      if (lost && vm.status?.phase !== 'Lost') {
        const message = agent ? `the agent of ${node} stopped renewing its lease ${Math.round(agent.expiredForSeconds)} s ago: the VM's state is unknown` : `${node} has no vmove agent`;
        await this.patchStatus(vm, { phase: 'Lost', conditions: this.cond(vm, { type: 'HostReachable', status: 'False', reason: 'AgentLost', message }) });
        this.d.events.record(vm, 'Warning', 'Lost', message);
      }
      return { requeueAfterMs: 5_000 };
    }
    if (findCondition(vm.status?.conditions, 'HostReachable')?.status !== 'True') {
      vm = await this.patchStatus(vm, {
        ...(vm.status?.phase === 'Lost' ? { phase: 'Pending' } : {}),
        conditions: this.cond(vm, { type: 'HostReachable', status: 'True', reason: 'AgentAlive', message: `the agent of ${node} is alive` }),
      });
    }

    const want = vmRunning(vm);
    const uid = vm.metadata.uid ?? '';
    const gen = vm.metadata.generation ?? 1;
    // Not reported by its host yet: (re)create it there. ensureVm is idempotent per opId.
    if (vm.status?.nodeName !== node) {
      return this.act(vm, agent.endpoint, `${uid}.create.${node}`, { kind: 'ensureVm', vm: this.spec(vm), disks: 'keep', start: want }, 'Created', `defined on ${node}${want ? ' and started' : ''}`);
    }
    const phase = vm.status?.phase;
    if (want && phase === 'Stopped') return this.act(vm, agent.endpoint, `${uid}.start.${gen}`, { kind: 'startVm', vm: this.spec(vm) }, 'Started', `started on ${node}`);
    if (!want && (phase === 'Running' || phase === 'Pending')) return this.act(vm, agent.endpoint, `${uid}.stop.${gen}`, { kind: 'stopVm', vm: this.spec(vm) }, 'Stopped', `stopped on ${node}`);
    if (vm.status?.observedGeneration !== gen) await this.patchStatus(vm, { observedGeneration: gen });
    return {};
  }

  private spec(vm: VirtualMachine) {
    return vmSpecFor(vm, currentResources(vm));
  }

  private cond(vm: VirtualMachine, c: ConditionInput) {
    return setCondition(vm.status?.conditions, c, new Date().toISOString(), vm.metadata.generation);
  }

  /** Choose the VM's host and record it before any agent acts, so a restart cannot place it twice. */
  private async place(vm: VirtualMachine): Promise<{ vm: VirtualMachine; node: string } | undefined> {
    const res = currentResources(vm);
    const result = placeVm(this.d.view.hosts(), {
      needs: { cpu: res.cpu, memoryBytes: res.memoryBytes, storage: vmStorage(vm) },
      nodeName: vm.spec.nodeName,
      inboundLimit: Number.POSITIVE_INFINITY,
    });
    if (!result.nodeName) {
      const c = findCondition(vm.status?.conditions, 'Scheduled');
      if (c?.message !== result.message) {
        await this.patchStatus(vm, { phase: 'Pending', conditions: this.cond(vm, { type: 'Scheduled', status: 'False', reason: 'Unschedulable', message: result.message }) });
        this.d.events.record(vm, 'Warning', 'Unschedulable', result.message);
      }
      return undefined;
    }
    const updated = await this.patchStatus(vm, {
      scheduledNode: result.nodeName,
      phase: 'Pending',
      conditions: this.cond(vm, { type: 'Scheduled', status: 'True', reason: 'Scheduled', message: `placed on ${result.nodeName}` }),
    });
    this.d.events.record(vm, 'Normal', 'Scheduled', `placed on ${result.nodeName}`);
    return { vm: updated, node: result.nodeName };
  }

  private async act(vm: VirtualMachine, endpoint: string, opId: string, req: OperationRequest, reason: string, what: string): Promise<ReconcileResult> {
    let st: OperationStatus;
    try {
      st = await this.d.agents.putOperation(endpoint, opId, req, { waitMs: this.d.config.agentWaitMs });
    } catch (err) {
      this.log.warn({ vm: vm.metadata.name, opId, err: err instanceof Error ? err.message : String(err) }, 'agent call failed; retrying');
      return { requeueAfterMs: 2_000 };
    }
    if (st.state === 'Running') return { requeueAfterMs: 1_000 };
    if (st.state === 'Failed') {
      const message = `${req.kind} failed: ${st.error?.message ?? 'unknown error'}`;
      if (findCondition(vm.status?.conditions, 'Failed')?.message !== message) {
        await this.patchStatus(vm, { ...(req.kind === 'ensureVm' ? { phase: 'Failed' } : {}), conditions: this.cond(vm, { type: 'Failed', status: 'True', reason: `${req.kind}Failed`, message }) });
        this.d.events.record(vm, 'Warning', 'Failed', message);
      }
      return { requeueAfterMs: 30_000 };
    }
    if (findCondition(vm.status?.conditions, 'Failed')?.status === 'True') {
      await this.patchStatus(vm, { conditions: this.cond(vm, { type: 'Failed', status: 'False', reason: 'Recovered', message: '' }) });
    }
    this.d.events.record(vm, 'Normal', reason, what);
    // The agent reports the new state; look again soon in case its report is slow.
    return { requeueAfterMs: 2_000 };
  }

  private async delete(vm: VirtualMachine): Promise<CleanedUp<VirtualMachine>> {
    const ref = vm.status?.moveRef;
    if (ref && this.d.view.moves.get(`${vm.metadata.namespace}/${ref.name}`)?.metadata.uid === ref.uid) {
      return { requeueAfterMs: 2_000 };
    }
    const node = vm.status?.nodeName ?? vm.status?.scheduledNode;
    if (node) {
      const agent = this.d.view.agent(node);
      if (agent?.alive) {
        const req: OperationRequest = { kind: 'deleteVm', vm: this.spec(vm), deleteLocalDisks: true, deleteSharedDisks: true };
        let st: OperationStatus;
        try {
          st = await this.d.agents.putOperation(agent.endpoint, `${vm.metadata.uid}.delete`, req, { waitMs: this.d.config.agentWaitMs });
        } catch {
          return { requeueAfterMs: 2_000 };
        }
        if (st.state === 'Running') return { requeueAfterMs: 1_000 };
        if (st.state === 'Failed') {
          this.d.events.record(vm, 'Warning', 'DeleteFailed', `could not remove the VM from ${node}: ${st.error?.message}; remove the finalizer ${VM_FINALIZER} to give up`);
          return { requeueAfterMs: 30_000 };
        }
      } else {
        const host = this.d.view.hosts().find((h) => h.node === node);
        if (host && !host.fenced && this.d.view.nodes.get(node)) {
          this.d.events.record(vm, 'Warning', 'HostUnreachable', `waiting for the agent of ${node} to remove the VM (or for the node to be fenced or deleted)`);
          return { requeueAfterMs: 10_000 };
        }
        this.d.events.record(vm, 'Warning', 'HostGone', `${node} is gone: whatever the VM left there is not cleaned up`);
      }
    }
    return { cleaned: vm };
  }

  private patchStatus(vm: VirtualMachine, status: VirtualMachineStatus): Promise<VirtualMachine> {
    return this.d.writers.vms.patch(vm, { status }, { subresource: 'status' });
  }
}

