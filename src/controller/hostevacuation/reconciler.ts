// Reconciles one HostEvacuation: observe (the evacuation, its node, the VMs on it, the
// MoveRequests it owns, every host) → decide (decide.ts, pure) → act (uncordon, record status,
// cordon, cancel, create, delete, let go) → say when to look again. Every act is idempotent:
// MoveRequest names are fixed by evacuation, VM and attempt, and the cordon is recorded in status
// before it is made (and lifted before that record is cleared), so a controller killed at any
// instant resumes from what the API server holds.
import type { HostEvacuation, MoveRequest, VirtualMachine } from '../../api/types';
import { API_VERSION } from '../../api/types';
import { isAlreadyExists, isNotFound } from '../../kube/api';
import { withFinalizer } from '../../kube/finalizer';
import { vmovePath } from '../../kube/paths';
import type { ReconcileResult } from '../../kube/workQueue';
import { componentLogger } from '../../log';
import type { ControllerDeps } from '../deps';
import { decideEvacuation } from './decide';
import { isFinal } from './phase';
import type { EvacuationDecision, NewMove } from './types';
import { observeEvacuation } from './facts';
import { ATTEMPT_LABEL, CANCELLED_BY_ANNOTATION, EVACUATION_FINALIZER, EVACUATION_LABEL, isOwnedBy, ownerReference, STOPPED_BY_ANNOTATION, VM_LABEL } from './names';
import { sameJson } from '../../json';

export type EvacuationDeps = Pick<ControllerDeps, 'api' | 'view' | 'writers' | 'events' | 'config'>;

export class HostEvacuationReconciler {
  private readonly log = componentLogger('hostevacuation');

  constructor(private readonly d: EvacuationDeps) {}

  readonly reconcile = async (key: string): Promise<ReconcileResult> => {
    const e = this.d.view.evacuations.get(key);
    // In a shard: only the evacuations of the shard's own Nodes.
    if (!e || !this.d.view.ownsNode(e.spec.nodeName)) return {};
    return withFinalizer(this.d.writers.evacuations, EVACUATION_FINALIZER, e, {
      // A finished evacuation gets no finalizer again; the one it has stays for its deletion.
      finished: (e) => isFinal(e.status?.phase),
      apply: async (e) => (await this.look(e)).next,
      cleanup: async (e) => {
        const { latest, release, next } = await this.look(e);
        if (!release) return next;
        this.log.info({ evacuation: e.metadata.name, node: e.spec.nodeName }, 'released');
        return { cleaned: latest };
      },
    });
  };

  /** Decide over the facts and act; answers the evacuation as last written, whether to let it go, and when to look again. */
  private async look(e: HostEvacuation): Promise<{ latest: HostEvacuation; release: boolean; next: ReconcileResult }> {
    const decision = decideEvacuation(observeEvacuation(this.d.view, e, this.d.config.deadHostAfterSeconds, new Date(), this.d.config.policyDefaults));
    const latest = await this.act(e, decision);
    return { latest, release: decision.actions.release, next: decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : {} };
  }

  // ---------------------------------------------------------------- act

  private async act(e: HostEvacuation, d: EvacuationDecision): Promise<HostEvacuation> {
    const a = d.actions;
    const node = e.spec.nodeName;
    // Lift the cordon before the status stops saying vmove made it, and record it before making it.
    if (a.node === 'uncordon') await this.setUnschedulable(node, false);
    if (!sameJson(d.status, e.status ?? {})) {
      const from = e.status?.phase;
      e = await this.d.writers.evacuations.replaceStatus(e, d.status);
      if (d.status.phase !== from) this.log.info({ evacuation: e.metadata.name, node, from, to: d.status.phase, message: d.status.message }, 'phase');
    }
    if (a.node === 'cordon') await this.setUnschedulable(node, true);

    for (const c of a.cancel) {
      const target = { metadata: { namespace: c.namespace, name: c.name } } as MoveRequest;
      // Unconditional: a cancel holds whatever else changed in the MoveRequest meanwhile.
      await this.d.writers.moves.patch(target, { metadata: { annotations: { [CANCELLED_BY_ANNOTATION]: c.why } }, spec: { cancel: true } }, { unconditional: true }).catch(ignoreNotFound);
    }
    for (const s of a.stop) {
      // evacuationStrategy Shutdown: the VM's own desired state says stopped, and the VirtualMachine
      // controller stops it on its host (stopVm, one operation id per generation). The wish is kept
      // in the API server before anything acts, so a controller killed here finds it there and the
      // next look only checks it; patching it again is a no-op. The annotation says who stopped it.
      const target = { metadata: { namespace: s.namespace, name: s.name } } as VirtualMachine;
      if (await this.d.writers.vms.patch(target, { metadata: { annotations: { [STOPPED_BY_ANNOTATION]: e.metadata.name ?? '' } }, spec: { running: false } }, { unconditional: true }).catch(ignoreNotFound)) {
        this.log.info({ evacuation: e.metadata.name, vm: `${s.namespace}/${s.name}` }, 'VM stopped (evacuationStrategy Shutdown)');
      }
    }
    for (const m of a.create) {
      // A creation's Events only when it happened now (not when a restart found it made).
      if (await this.createMove(e, m)) for (const ev of m.events) this.d.events.record(e, ev.type, ev.reason, ev.message);
    }
    for (const r of a.delete) {
      try {
        await this.d.api.delete(vmovePath('moverequests', { namespace: r.namespace, name: r.name }));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    for (const ev of d.events) this.d.events.record(e, ev.type, ev.reason, ev.message);
    return e;
  }

  /** Create one MoveRequest; false when it already existed (a restart, or a cache behind our own write). */
  private async createMove(e: HostEvacuation, m: NewMove): Promise<boolean> {
    const body: MoveRequest = {
      apiVersion: API_VERSION,
      kind: 'MoveRequest',
      metadata: {
        name: m.name,
        namespace: m.namespace,
        labels: { [EVACUATION_LABEL]: e.metadata.name ?? '', [VM_LABEL]: m.vmName, [ATTEMPT_LABEL]: String(m.attempt) },
        ownerReferences: [ownerReference(e)],
      },
      spec: m.spec,
    };
    const collection = vmovePath('moverequests', { namespace: m.namespace });
    try {
      const created = await this.d.api.create<MoveRequest>(collection, body);
      this.d.view.moves.writeThrough(created);
      this.log.info({ evacuation: e.metadata.name, move: `${m.namespace}/${m.name}`, target: m.step.targetNode, moveType: m.step.moveType, attempt: m.attempt }, 'move created');
      return true;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      const existing = await this.d.writers.moves.refresh(body);
      if (existing && !isOwnedBy(existing, e)) {
        this.d.events.record(e, 'Warning', 'NameTaken', `MoveRequest ${m.namespace}/${m.name} exists and is not this evacuation's; ${m.namespace}/${m.vmName} waits until it is removed`);
      }
      return false;
    }
  }

  private async setUnschedulable(node: string, unschedulable: boolean): Promise<void> {
    const target = this.d.view.nodes.get(node) ?? { metadata: { name: node } };
    if (await this.d.writers.nodes.patch(target, { spec: { unschedulable } }, { unconditional: true }).catch(ignoreNotFound)) {
      this.log.info({ node, unschedulable }, unschedulable ? 'cordoned' : 'uncordoned');
    }
  }
}

const ignoreNotFound = (err: unknown): undefined => {
  if (!isNotFound(err)) throw err;
  return undefined;
};
