// What a host advertises, and where: each agent holds a Lease `vmove-agent-<node>` in the
// operator's namespace, carrying its endpoint and its host's capabilities; the controller places
// VMs by what it reads there.
import type { StorageKind } from '../api/types';

export type DriverKind = 'sim' | 'qemu' | 'libvirt';

/** What a host can do; advertised on the agent's Lease. */
export interface HostCapabilities {
  driver: DriverKind;
  storage: StorageKind[];
  cpu: number;
  memoryBytes: number;
  liveMigration: boolean;
  blockMigration: boolean;
  hotplug: boolean;
  /** Host (IP or name) the migration stream of incoming VMs should be sent to. */
  migrationAddress: string;
  /** Accelerator the driver runs guests with (kvm, tcg, sim). */
  accelerator: string;
  /** MiB/s the host's migration link carries, when known (evacuation plans check local-disk copies against move timeouts with it). */
  linkMiBps?: number;
}

/** Names and annotations that tie agents to the API server. */
export const AGENT_NAMESPACE_DEFAULT = 'vmove-system';
export const agentLeaseName = (node: string): string => `vmove-agent-${node}`;
export const LEASE_ENDPOINT_ANNOTATION = 'vmove.dev/endpoint';
export const LEASE_CAPABILITIES_ANNOTATION = 'vmove.dev/capabilities';
export const LEASE_NODE_LABEL = 'vmove.dev/node';

/** The audience every token shown to an agent must carry (TokenRequest / projected token `audience`). */
export const AGENT_AUDIENCE = 'vmove-agent';
export const AGENT_LEASE_SELECTOR = 'app.kubernetes.io/component=vmove-agent';
