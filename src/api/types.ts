// The vmove API (group vmove.dev, version v1alpha1) as TypeScript types.
// crds/*.yaml is the source of truth for the schema; test/unit/api-schema.test.ts keeps
// these types and the CRD schemas in step (every field here exists there and vice versa).
// Every `number` field is an integer in the CRDs: round before writing status.

export const GROUP = 'vmove.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const PLURALS = {
  VirtualMachine: 'virtualmachines',
  MoveRequest: 'moverequests',
  HostEvacuation: 'hostevacuations',
  MovePolicy: 'movepolicies',
} as const;

/**
 * A Kubernetes quantity: a string such as "512Mi" or "4Gi", or a plain integer number of
 * bytes. The CRDs accept both (x-kubernetes-int-or-string), as core Kubernetes does for
 * resources, so code reading a quantity from the API server must handle both.
 */
export type Quantity = string | number;

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** metav1.Condition */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

// ---------------------------------------------------------------- VirtualMachine

export type StorageKind = 'Local' | 'SharedFile' | 'SharedBlock';
export const STORAGE_KINDS: readonly StorageKind[] = ['Local', 'SharedFile', 'SharedBlock'];

export interface Disk {
  name: string;
  size: Quantity;
  storage: StorageKind;
}

export interface VirtualMachineSpec {
  /** Source image the VM was built from (a name the agents' drivers resolve). */
  image: string;
  cpu: number;
  memory: Quantity;
  disks?: Disk[];
  /** Initial placement; empty = automatic. Only read when the VM is first placed. */
  nodeName?: string;
  /** Power state wanted; default true. */
  running?: boolean;
  /** Extra kernel command line for images booted by direct kernel boot. */
  kernelArgs?: string;
  /** What a HostEvacuation does with this VM; unset: the matching MovePolicy's, else LiveMigrateIfPossible. */
  evacuationStrategy?: EvacuationStrategy;
}

/**
 * What a HostEvacuation does with a VM: LiveMigrate (live or not at all: the VM's part fails),
 * LiveMigrateIfPossible (live, else cold), Cold, Shutdown (stopped and left on the host), None (the
 * evacuation waits for a person).
 */
export type EvacuationStrategy = 'LiveMigrate' | 'LiveMigrateIfPossible' | 'Cold' | 'Shutdown' | 'None';
export const EVACUATION_STRATEGIES: readonly EvacuationStrategy[] = ['LiveMigrate', 'LiveMigrateIfPossible', 'Cold', 'Shutdown', 'None'];
export const DEFAULT_EVACUATION_STRATEGY: EvacuationStrategy = 'LiveMigrateIfPossible';

export type VirtualMachinePhase = 'Pending' | 'Running' | 'Stopped' | 'Moving' | 'Failed' | 'Lost';

/** The VM condition that says whether its guest is up (written by the VM's host). */
export const GUEST_READY = 'GuestReady';

/** What the VM's host sees of its guest (the GuestReady condition says whether it is up). */
export interface GuestStatus {
  /** When the guest was first seen ready in its current run (kept across live moves). */
  readySince?: string;
  /** The last heartbeat counter seen: a record refreshed every 5 minutes while it goes on (a stall is judged by its host and written at once). */
  heartbeat?: number;
  /** When that heartbeat was seen. */
  heartbeatTime?: string;
}

export interface VirtualMachineStatus {
  /** Where the VM runs now, as its host's agent reports it. */
  nodeName?: string;
  /** Where the controller placed the VM (written before any agent is asked to act). */
  scheduledNode?: string;
  phase?: VirtualMachinePhase;
  /** CPU count and memory as running. */
  cpu?: number;
  memory?: Quantity;
  /** The MoveRequest that holds this VM (one move per VM at a time). */
  moveRef?: { name: string; uid: string };
  guest?: GuestStatus;
  observedGeneration?: number;
  conditions?: Condition[];
}

export interface VirtualMachine {
  apiVersion: typeof API_VERSION;
  kind: 'VirtualMachine';
  metadata: ObjectMeta;
  spec: VirtualMachineSpec;
  status?: VirtualMachineStatus;
}

// ---------------------------------------------------------------- MoveRequest

export type MoveMode = 'Auto' | 'Live' | 'Cold' | 'Rebuild';
export type StoragePreference = 'Auto' | 'Shared' | 'Block';

export interface MoveTarget {
  nodeName?: string;
  nodeSelector?: Record<string, string>;
}

export interface MoveResources {
  cpu?: number;
  memory?: Quantity;
}

/** MoveRequest.spec.policy, and the same knobs as a MovePolicy's defaults. */
export interface MoveRequestPolicy {
  maxDowntimeMs?: number;
  bandwidthMiBps?: number;
  /** Seconds allowed per GiB of memory + disk to move before the move is aborted. */
  completionTimeoutPerGiB?: number;
  /** Seconds without progress before the move is aborted. */
  progressTimeoutSeconds?: number;
  allowAutoConverge?: boolean;
  allowPostCopy?: boolean;
  /** Migration streams in plaintext instead of TLS (the move's history says so). Only with mode Live or Auto. */
  insecureMigration?: boolean;
  maxAttempts?: number;
}

export interface MoveRequestSpec {
  vmName: string;
  mode?: MoveMode;
  target?: MoveTarget;
  resources?: MoveResources;
  storage?: StoragePreference;
  /** Which waiting move gets a free slot first (default User). */
  priority?: MovePriority;
  policy?: MoveRequestPolicy;
  cancel?: boolean;
}

/** Highest first. */
export type MovePriority = 'Critical' | 'Maintenance' | 'User';
export const MOVE_PRIORITIES: readonly MovePriority[] = ['Critical', 'Maintenance', 'User'];

/** Every policy value a move uses, resolved once at intake (status.effectivePolicy). */
export interface EffectivePolicy {
  mode: MoveMode;
  maxDowntimeMs: number;
  bandwidthMiBps: number;
  completionTimeoutPerGiB: number;
  progressTimeoutSeconds: number;
  allowAutoConverge: boolean;
  allowPostCopy: boolean;
  insecureMigration: boolean;
  maxAttempts: number;
}

export type MoveType = 'Live' | 'Cold' | 'Rebuild' | 'ResizeInPlace';
export type MoveVariant =
  | 'SharedStorage'
  | 'BlockMigration'
  | 'DiskCopy'
  | 'FromSharedDisk'
  | 'FromImage'
  | 'Hotplug'
  | 'Restart';

/** The states of the move machines; the first three terminal ones end every machine. */
export type MovePhase =
  | 'Pending'
  | 'Scheduling'
  | 'StoppingSource'
  | 'PreparingTarget'
  | 'CopyingDisks'
  | 'Migrating'
  | 'Resizing'
  | 'SwitchingOver'
  | 'Verifying'
  | 'CleaningUp'
  | 'RollingBack'
  | 'Succeeded'
  | 'Failed'
  | 'Cancelled';

export interface MoveProgress {
  memoryTotalBytes?: number;
  memoryProcessedBytes?: number;
  memoryRemainingBytes?: number;
  diskTotalBytes?: number;
  diskProcessedBytes?: number;
  diskRemainingBytes?: number;
  dirtyRateBytesPerSecond?: number;
  iteration?: number;
  /** Estimated percent done: a whole number from 0 to 100 (the CRD rejects fractions). */
  percent?: number;
}

export interface HistoryEntry {
  phase: MovePhase;
  startedAt: string;
  endedAt?: string;
  attempt: number;
  message?: string;
}

export interface RejectedNode {
  nodeName: string;
  reason: string;
}

export interface Placement {
  nodeName?: string;
  message?: string;
  rejected?: RejectedNode[];
}

export interface MoveRequestStatus {
  phase?: MovePhase;
  moveType?: MoveType;
  variant?: MoveVariant;
  /** Why this move type and variant were chosen. */
  reason?: string;
  sourceNode?: string;
  targetNode?: string;
  attempt?: number;
  progress?: MoveProgress;
  history?: HistoryEntry[];
  placement?: Placement;
  startTime?: string;
  completionTime?: string;
  observedGeneration?: number;
  conditions?: Condition[];
  /** A short human sentence on what is happening now or how the move ended. */
  message?: string;
  /** Persisted state of the move's state machine (opaque to users). */
  machine?: Record<string, unknown>;
  /** The MovePolicy the move took its defaults from at intake; '' when none matched. */
  policyRef?: string;
  /** What the move uses, resolved once at intake; the move reads this, not spec. */
  effectivePolicy?: EffectivePolicy;
}

export interface MoveRequest {
  apiVersion: typeof API_VERSION;
  kind: 'MoveRequest';
  metadata: ObjectMeta;
  spec: MoveRequestSpec;
  status?: MoveRequestStatus;
}

// ---------------------------------------------------------------- HostEvacuation

export type EvacuationPhase =
  | 'Pending'
  | 'Planning'
  | 'WaitingForFence'
  | 'Evacuating'
  | 'Succeeded'
  | 'Failed'
  | 'Cancelled';

export interface HostEvacuationSpec {
  nodeName: string;
  mode?: MoveMode;
  cordon?: boolean;
  maxParallel?: number;
  vmSelector?: LabelSelector;
  target?: { nodeSelector?: Record<string, string> };
  /** Retries per VM for a move that failed for a transient reason. */
  maxRetries?: number;
  dryRun?: boolean;
  cancel?: boolean;
}

export interface EvacuationMove {
  namespace: string;
  name: string;
  vmName: string;
  phase?: MovePhase;
  targetNode?: string;
  moveType?: MoveType;
  attempt?: number;
  message?: string;
}

/** Where a VM's evacuation strategy came from. */
export type StrategySource = 'VirtualMachine' | 'MovePolicy' | 'Default';

/** What an evacuation does with one VM. */
export type EvacuationAction = 'LiveMove' | 'ColdMove' | 'Rebuild' | 'Shutdown' | 'WaitForPerson' | 'Wait' | 'Fail';

export type BlockerReason = 'NoHostWithRoom' | 'DiskCopyTooSlow' | 'NoLiveTarget' | 'StrategyNone' | 'CannotMove';

/** Something that keeps a VM from leaving its host as its strategy says. */
export interface EvacuationBlocker {
  reason: BlockerReason;
  message: string;
}

export interface PlannedMove {
  namespace: string;
  vmName: string;
  order: number;
  targetNode?: string;
  moveType?: MoveType;
  variant?: MoveVariant;
  reason: string;
  rejected?: RejectedNode[];
  strategy?: EvacuationStrategy;
  strategySource?: StrategySource;
  /** The MovePolicy the strategy came from (strategySource MovePolicy). */
  strategyPolicy?: string;
  action?: EvacuationAction;
  blockers?: EvacuationBlocker[];
}

export interface HostEvacuationStatus {
  phase?: EvacuationPhase;
  /** Alive: empty a working host. Dead: recover the VMs of a host that has died. */
  hostState?: 'Alive' | 'Dead';
  total?: number;
  succeeded?: number;
  failed?: number;
  inProgress?: number;
  pending?: number;
  moves?: EvacuationMove[];
  plan?: PlannedMove[];
  startTime?: string;
  completionTime?: string;
  observedGeneration?: number;
  conditions?: Condition[];
  message?: string;
}

export interface HostEvacuation {
  apiVersion: typeof API_VERSION;
  kind: 'HostEvacuation';
  metadata: ObjectMeta;
  spec: HostEvacuationSpec;
  status?: HostEvacuationStatus;
}

// ---------------------------------------------------------------- MovePolicy

export interface MovePolicySelectors {
  namespaceSelector?: LabelSelector;
  vmSelector?: LabelSelector;
}

/** Cluster-wide defaults for the moves of the VMs it selects; a MoveRequest's own fields win. */
export interface MovePolicySpec extends MoveRequestPolicy {
  selectors?: MovePolicySelectors;
  /** Mode for a MoveRequest that sets none (Rebuild is never a default). */
  mode?: 'Auto' | 'Live' | 'Cold';
  /** What a HostEvacuation does with a selected VM that sets no spec.evacuationStrategy. */
  evacuationStrategy?: EvacuationStrategy;
}

export interface MovePolicy {
  apiVersion: typeof API_VERSION;
  kind: 'MovePolicy';
  metadata: ObjectMeta;
  spec: MovePolicySpec;
}

export type VmoveObject = VirtualMachine | MoveRequest | HostEvacuation | MovePolicy;
