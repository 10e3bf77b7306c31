// Cluster-wide settings of the controller, with defaults like KubeVirt's where they overlap.
import type { ResolvedPolicy } from '../machines/vocabulary';
import type { MoveMode } from '../api/types';

export interface MoveLimits {
  /** Moves transferring at once in the cluster (past Pending, bytes not across yet). */
  parallelMoves: number;
  outboundPerNode: number;
  inboundPerNode: number;
}

export interface ControllerConfig {
  /** Where agent Leases, the leader Lease and cluster-scoped Events live. */
  namespace: string;
  identity: string;
  limits: MoveLimits;
  /** What a MoveRequest's spec.policy and a matching MovePolicy leave unsaid (--default-*). */
  policyDefaults: ResolvedPolicy;
  /** Mode for a MoveRequest that sets none and no MovePolicy gives (--default-mode). */
  defaultMode: MoveMode;
  /** A waiting move rises one priority class per this many seconds waited (--priority-aging-seconds). */
  priorityAgingSeconds: number;
  /** How long a move waits in Scheduling for capacity held by other moves before failing. */
  schedulingWaitSeconds: number;
  /** An agent whose lease expired this long ago is lost: steps on its host are given up. */
  agentLostAfterSeconds: number;
  /** A host is dead when its agent's lease expired this long ago and its Node is not Ready. */
  deadHostAfterSeconds: number;
  /** Create a HostEvacuation for a dead, fenced host automatically. */
  autoEvacuateDeadHosts: boolean;
  resyncMs: number;
  workers: number;
  /** Long-poll an agent operation this long before answering Running. */
  agentWaitMs: number;
  /**
   * The shard this controller runs (--shard): only the Nodes and VirtualMachines labelled
   * vmove.dev/shard=<shard>, the MoveRequests of those VMs and the HostEvacuations of those
   * Nodes, with a leader Lease of its own. Unset: the whole cluster.
   */
  shard?: string;
}

export const DEFAULT_POLICY: ResolvedPolicy = {
  maxDowntimeMs: 300,
  bandwidthMiBps: 0,
  completionTimeoutPerGiB: 150,
  progressTimeoutSeconds: 150,
  allowAutoConverge: true,
  allowPostCopy: false,
  maxAttempts: 3,
  insecureMigration: false,
};

export const defaultConfig = (over: Partial<ControllerConfig> = {}): ControllerConfig => ({
  namespace: 'vmove-system',
  identity: `vmove-controller-${process.pid}`,
  limits: { parallelMoves: 5, outboundPerNode: 2, inboundPerNode: 2 },
  policyDefaults: DEFAULT_POLICY,
  defaultMode: 'Auto',
  priorityAgingSeconds: 120,
  schedulingWaitSeconds: 300,
  agentLostAfterSeconds: 5,
  deadHostAfterSeconds: 40,
  autoEvacuateDeadHosts: false,
  resyncMs: 30_000,
  workers: 8,
  agentWaitMs: 1_000,
  ...over,
});
