// What an evacuation's decision reads and returns: the facts the reconciler observed, and the
// status, actions and events it hands back to act on. Shared by the decision's parts (decide.ts
// and the files it calls), the observer (facts.ts) and the reconciler.
import type { HostEvacuation, HostEvacuationStatus, MoveRequest, MoveRequestSpec, VirtualMachine } from '../../api/types';
import type { HostFacts } from '../clusterView';
import type { PlanStep } from './planner';
import type { VmStrategy } from './strategy';

export interface EvacuationFacts {
  evacuation: HostEvacuation;
  now: Date;
  node: { exists: boolean; unschedulable: boolean };
  /** Facts of the node being emptied (undefined: neither a Node nor an agent by that name). */
  host?: HostFacts;
  /** Every host, with room already promised to moves that have not started (for planning). */
  hosts: HostFacts[];
  /** The VMs on the node, and those of the evacuation's moves wherever they are now. */
  vms: VirtualMachine[];
  /** The evacuation's own MoveRequests. */
  moves: MoveRequest[];
  /** Another unfinished evacuation of the same node asked for it to be cordoned. */
  cordonWantedByOthers: boolean;
  deadHostAfterSeconds: number;
  /** Each VM's evacuation strategy (by namespace/name; missing: the default). */
  strategies?: ReadonlyMap<string, VmStrategy>;
}

export interface NewMove {
  namespace: string;
  name: string;
  vmName: string;
  attempt: number;
  spec: MoveRequestSpec;
  step: PlanStep;
  /** Why the previous attempt failed, when this is a retry. */
  retry?: string;
  /** Recorded once the MoveRequest is created. */
  events: EventNote[];
}

export interface MoveRef {
  namespace: string;
  name: string;
}

export interface EvacuationActions {
  node?: 'cordon' | 'uncordon';
  create: NewMove[];
  /** Set spec.cancel on these (the engine rolls each back), saying why. */
  cancel: (MoveRef & { why: string })[];
  delete: MoveRef[];
  /** Stop these VMs where they are (evacuationStrategy Shutdown): their spec.running is set to false. */
  stop: (MoveRef & { why: string })[];
  /** Remove the finalizer: the evacuation may go. */
  release: boolean;
}

export interface EventNote {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface EvacuationDecision {
  status: HostEvacuationStatus;
  actions: EvacuationActions;
  events: EventNote[];
  requeueAfterMs?: number;
}
