// Builders of VMs, MoveRequests and HostEvacuations for the evacuation's pure tests.
import type { HostEvacuation, HostEvacuationSpec, MovePhase, MoveRequest, MoveRequestSpec, MoveType, MoveVariant, StorageKind, VirtualMachine } from '../../../../src/api/types';
import { ATTEMPT_LABEL, EVACUATION_LABEL, VM_LABEL } from '../../../../src/controller/hostevacuation/names';

export { GiB, MiB, host } from '../hostFacts';

export function vm(name: string, o: { node?: string; memory?: string; cpu?: number; storage?: StorageKind; running?: boolean; labels?: Record<string, string>; moveRef?: { name: string; uid: string }; reported?: boolean } = {}): VirtualMachine {
  const node = o.node ?? 'a';
  return {
    apiVersion: 'vmove.dev/v1alpha1',
    kind: 'VirtualMachine',
    metadata: { name, namespace: 'default', uid: `vm-${name}`, ...(o.labels ? { labels: o.labels } : {}) },
    spec: { image: 'debian-12', cpu: o.cpu ?? 1, memory: o.memory ?? '1Gi', running: o.running ?? true, disks: [{ name: 'root', size: '10Gi', storage: o.storage ?? 'SharedFile' }] },
    status: {
      scheduledNode: node,
      ...(o.reported === false ? {} : { nodeName: node }),
      phase: o.running === false ? 'Stopped' : 'Running',
      ...(o.moveRef ? { moveRef: o.moveRef } : {}),
    },
  };
}

export const EVAC_UID = 'evac-uid';

export function evacuation(spec: Partial<HostEvacuationSpec> = {}, o: { status?: HostEvacuation['status']; deleting?: boolean; name?: string; uid?: string } = {}): HostEvacuation {
  return {
    apiVersion: 'vmove.dev/v1alpha1',
    kind: 'HostEvacuation',
    metadata: {
      name: o.name ?? 'drain-a',
      uid: o.uid ?? EVAC_UID,
      generation: 1,
      finalizers: ['vmove.dev/evacuation-protection'],
      ...(o.deleting ? { deletionTimestamp: '2030-01-01T00:00:00Z' } : {}),
    },
    spec: { nodeName: 'a', mode: 'Auto', cordon: true, maxParallel: 2, dryRun: false, cancel: false, ...spec },
    ...(o.status ? { status: o.status } : {}),
  };
}

let uidSeq = 0;

/** A MoveRequest the evacuation owns. */
export function ownedMove(
  vmName: string,
  attempt: number,
  o: {
    phase?: MovePhase;
    target?: string;
    mode?: MoveRequestSpec['mode'];
    moveType?: MoveType;
    variant?: MoveVariant;
    source?: string;
    cancel?: boolean;
    message?: string;
    context?: Record<string, unknown>;
    annotations?: Record<string, string>;
    evacuation?: string;
    uid?: string;
  } = {},
): MoveRequest {
  const evac = o.evacuation ?? 'drain-a';
  return {
    apiVersion: 'vmove.dev/v1alpha1',
    kind: 'MoveRequest',
    metadata: {
      name: `${evac}-${vmName}-${attempt}`,
      namespace: 'default',
      uid: o.uid ?? `mr-${++uidSeq}`,
      creationTimestamp: '2030-01-01T00:00:00Z',
      labels: { [EVACUATION_LABEL]: evac, [VM_LABEL]: vmName, [ATTEMPT_LABEL]: String(attempt) },
      ownerReferences: [{ apiVersion: 'vmove.dev/v1alpha1', kind: 'HostEvacuation', name: evac, uid: EVAC_UID, controller: true }],
      ...(o.annotations ? { annotations: o.annotations } : {}),
    },
    spec: { vmName, mode: o.mode ?? 'Auto', ...(o.target ? { target: { nodeName: o.target } } : {}), ...(o.cancel ? { cancel: true } : {}) },
    ...(o.phase
      ? {
          status: {
            phase: o.phase,
            ...(o.moveType ? { moveType: o.moveType } : {}),
            ...(o.variant ? { variant: o.variant } : {}),
            sourceNode: o.source ?? 'a',
            ...(o.target && o.phase !== 'Pending' ? { targetNode: o.target } : {}),
            ...(o.message ? { message: o.message } : {}),
            ...(o.context ? { machine: { type: o.moveType ?? 'Live', state: o.phase, context: o.context } } : {}),
          },
        }
      : {}),
  };
}
