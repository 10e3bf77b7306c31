// Names, labels and annotations an evacuation puts on what it creates, so it finds its own
// MoveRequests again after a restart (there is no garbage collector to rely on).
import { API_VERSION, type HostEvacuation, type MoveRequest } from '../../api/types';
import { EVACUATION_LABEL } from '../limits';

export { EVACUATION_LABEL };
export const EVACUATION_FINALIZER = 'vmove.dev/evacuation-protection';
export const VM_LABEL = 'vmove.dev/vm';
/** The evacuation's attempt for this VM (1, 2, … — a retry is a new MoveRequest). */
export const ATTEMPT_LABEL = 'vmove.dev/evacuation-attempt';
/** Set when the evacuation cancels one of its moves itself; the value says why. */
export const CANCELLED_BY_ANNOTATION = 'vmove.dev/cancelled-by-evacuation';
/** On a VM an evacuation stopped and left on its host (evacuationStrategy Shutdown); the value names the evacuation. */
export const STOPPED_BY_ANNOTATION = 'vmove.dev/stopped-by-evacuation';
/** On HostEvacuations the controller created for a dead, fenced host. */
export const AUTO_EVACUATION_LABEL = 'vmove.dev/auto-evacuation';

/** `<evacuation>-<vm>-<attempt>`: readable, and the same name again after a restart. */
export const moveName = (evacuation: string, vm: string, attempt: number): string => `${evacuation}-${vm}-${attempt}`;

export const isOwnedBy = (mr: MoveRequest, e: HostEvacuation): boolean =>
  mr.metadata.labels?.[EVACUATION_LABEL] === e.metadata.name && (mr.metadata.ownerReferences ?? []).some((o) => o.uid === e.metadata.uid);

export const attemptOf = (mr: MoveRequest): number => Number(mr.metadata.labels?.[ATTEMPT_LABEL] ?? '1') || 1;

export function ownerReference(e: HostEvacuation) {
  return { apiVersion: API_VERSION, kind: 'HostEvacuation', name: e.metadata.name ?? '', uid: e.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}
