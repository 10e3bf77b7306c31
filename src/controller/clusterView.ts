// What the controller sees of the cluster: informer caches of the kinds it watches, and the
// facts derived from them that decisions need (which agents are alive, what each host offers
// and has in use). Reading only; every decision over these facts is a pure function elsewhere.
import type { HostEvacuation, MovePolicy, MoveRequest, MoveType, VirtualMachine } from '../api/types';
import { parseBytes } from '../api/quantity';
import { AGENT_LEASE_SELECTOR, agentLeaseName, LEASE_CAPABILITIES_ANNOTATION, LEASE_ENDPOINT_ANNOTATION, LEASE_NODE_LABEL, type HostCapabilities } from '../protocol/host';
import type { KubeApi } from '../kube/api';
import { Informer } from '../kube/informer';
import { corePath, leasePath, vmovePath } from '../kube/paths';
import { moveRecordOf } from '../machines/record';
import { traitsOf } from '../machines/traits';
import { bytesAcross, isTerminal } from '../machines/vocabulary';

export interface NodeObject {
  metadata: { name: string; uid?: string; resourceVersion?: string; labels?: Record<string, string> };
  spec?: { unschedulable?: boolean; taints?: { key: string; value?: string; effect: string }[] };
  status?: { conditions?: { type: string; status: string; lastHeartbeatTime?: string }[] };
}

export interface NamespaceObject {
  metadata: { name: string; uid?: string; resourceVersion?: string; labels?: Record<string, string> };
}

export interface LeaseObject {
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string };
}

export const OUT_OF_SERVICE_TAINT = 'node.kubernetes.io/out-of-service';

export interface AgentInfo {
  node: string;
  endpoint: string;
  capabilities: HostCapabilities;
  alive: boolean;
  /** Seconds since the lease expired (0 while alive). */
  expiredForSeconds: number;
}

export interface HostFacts {
  node: string;
  labels: Record<string, string>;
  cordoned: boolean;
  /** Carries the out-of-service taint: the host is known to be powered off (fenced). */
  fenced: boolean;
  /** Node Ready condition; undefined when the Node reports none (no kubelet). */
  ready?: boolean;
  agent?: AgentInfo;
  /** CPU and memory of the VMs placed here plus moves in flight towards it. */
  used: { cpu: number; memoryBytes: number };
  /** Part of `used` held by moves in flight (it frees itself when they end). */
  heldByMoves: { cpu: number; memoryBytes: number };
  inbound: number;
  outbound: number;
}

/** A move that is past Pending and not finished: it holds limits and capacity. */
export interface MoveInFlight {
  uid: string;
  key: string;
  vmKey: string;
  moveType?: MoveType;
  source?: string;
  target?: string;
  after: { cpu: number; memoryBytes: number };
  /** Past its transfer (bytesAcross): holds capacity, no stream. Unset for a move just admitted. */
  bytesAcross?: boolean;
}

/** Label on Nodes and VirtualMachines naming the controller shard that handles them (--shard). */
export const SHARD_LABEL = 'vmove.dev/shard';

/** Holds a transfer stream: a move that carries bytes (not a resize in place) and is not past its transfer. */
export const holdsStream = (m: Pick<MoveInFlight, 'moveType' | 'bytesAcross'>): boolean => traitsOf(m.moveType).transfers && !m.bytesAcross;

export class ClusterView {
  readonly vms: Informer<VirtualMachine>;
  readonly moves: Informer<MoveRequest>;
  readonly evacuations: Informer<HostEvacuation>;
  readonly nodes: Informer<NodeObject>;
  readonly leases: Informer<LeaseObject>;
  /** Cluster-scoped: read at intake, for the policy a new move uses. */
  readonly movePolicies: Informer<MovePolicy>;
  /** For MovePolicy namespaceSelectors. */
  readonly namespaces: Informer<NamespaceObject>;

  constructor(
    api: KubeApi,
    readonly agentNamespace: string,
    resyncMs: number,
    /** Told when an informer restarts its watch (vmove_informer_restarts_total). */
    restarted: (informer: string) => void = () => undefined,
    /** A shard's view: its Nodes and VMs only (by SHARD_LABEL), and what belongs to them. */
    readonly shard?: string,
  ) {
    const opts = (name: string) => ({ resyncMs, name, onRestart: () => restarted(name) });
    const own = shard ? { labelSelector: `${SHARD_LABEL}=${shard}` } : {};
    this.vms = new Informer<VirtualMachine>(api, vmovePath('virtualmachines'), { ...own, ...opts('virtualmachines') });
    this.moves = new Informer<MoveRequest>(api, vmovePath('moverequests'), opts('moverequests'));
    this.evacuations = new Informer<HostEvacuation>(api, vmovePath('hostevacuations'), opts('hostevacuations'));
    this.nodes = new Informer<NodeObject>(api, corePath('nodes'), { ...own, ...opts('nodes') });
    this.leases = new Informer<LeaseObject>(api, leasePath({ namespace: agentNamespace }), { labelSelector: AGENT_LEASE_SELECTOR, ...opts('agent-leases') });
    this.movePolicies = new Informer<MovePolicy>(api, vmovePath('movepolicies'), opts('movepolicies'));
    this.namespaces = new Informer<NamespaceObject>(api, corePath('namespaces'), opts('namespaces'));
  }

  start(): void {
    for (const i of this.informers()) i.start();
  }

  stop(): void {
    for (const i of this.informers()) i.stop();
  }

  synced(): Promise<void> {
    return Promise.all(this.informers().map((i) => i.hasSynced)).then(() => undefined);
  }

  private informers() {
    return [this.vms, this.moves, this.evacuations, this.nodes, this.leases, this.movePolicies, this.namespaces] as const;
  }

  agent(node: string, now = Date.now()): AgentInfo | undefined {
    const nodeOf = (l: LeaseObject) => l.metadata.labels?.[LEASE_NODE_LABEL] ?? l.spec.holderIdentity;
    // Agents name their Lease after their node: one lookup, not a walk of every Lease at every look.
    const named = this.leases.get(`${this.agentNamespace}/${agentLeaseName(node)}`);
    const lease = named && nodeOf(named) === node ? named : this.leases.list().find((l) => nodeOf(l) === node);
    return lease ? agentFromLease(lease, now) : undefined;
  }

  /** Whether the node carries the out-of-service taint (it is known to be powered off). */
  fenced(node: string): boolean {
    return isFenced(this.nodes.get(node));
  }

  agents(now = Date.now()): AgentInfo[] {
    return this.leases.list().map((l) => agentFromLease(l, now)).filter((a): a is AgentInfo => !!a);
  }

  /**
   * Whether this view's controller handles the request: always, unsharded; in a shard, when the
   * VM is one of the shard's (a MoveRequest carries no shard of its own: its VM's decides).
   */
  ownsMove(mr: MoveRequest): boolean {
    return !this.shard || !!this.vms.get(`${mr.metadata.namespace}/${mr.spec.vmName}`);
  }

  /** Whether this view's controller handles the node (its evacuations, its capacity): always, unsharded. */
  ownsNode(node: string): boolean {
    return !this.shard || !!this.nodes.get(node);
  }

  /** Moves that hold limits and capacity now. */
  movesInFlight(): MoveInFlight[] {
    return this.moves
      .list()
      .filter((m) => this.ownsMove(m))
      .filter((m) => m.status?.phase && m.status.phase !== 'Pending' && !isTerminal(m.status.phase))
      .map((m) => {
        const ctx = moveRecordOf(m.status)?.context;
        return {
          uid: m.metadata.uid ?? '',
          key: `${m.metadata.namespace}/${m.metadata.name}`,
          vmKey: `${m.metadata.namespace}/${m.spec.vmName}`,
          moveType: m.status?.moveType,
          source: m.status?.sourceNode,
          target: m.status?.targetNode,
          after: ctx?.after ?? { cpu: 0, memoryBytes: 0 },
          bytesAcross: bytesAcross(m.status?.phase),
        };
      });
  }

  /**
   * Facts about every host that has a Node or an agent. `inFlight` defaults to the moves the cache
   * shows; the move reconciler passes its own view, which also knows moves it admitted or placed a
   * moment ago whose status write has not come back yet.
   */
  hosts(now = Date.now(), inFlight: MoveInFlight[] = this.movesInFlight()): HostFacts[] {
    const agents = new Map(this.agents(now).map((a) => [a.node, a]));
    // A shard places only on its own Nodes; unsharded, an agent without a Node is a host too.
    const names = new Set([...this.nodes.list().map((n) => n.metadata.name), ...(this.shard ? [] : agents.keys())]);
    const usage = new Map<string, { cpu: number; memoryBytes: number }>();
    const held = new Map<string, { cpu: number; memoryBytes: number }>();
    const add = (m: Map<string, { cpu: number; memoryBytes: number }>, node: string | undefined, cpu: number, mem: number): void => {
      if (!node) return;
      const u = m.get(node) ?? { cpu: 0, memoryBytes: 0 };
      m.set(node, { cpu: u.cpu + cpu, memoryBytes: u.memoryBytes + mem });
    };
    for (const vm of this.vms.list()) {
      const node = vm.status?.nodeName ?? vm.status?.scheduledNode;
      add(usage, node, vm.status?.cpu ?? vm.spec.cpu, parseBytes(vm.status?.memory ?? vm.spec.memory));
    }
    for (const m of inFlight) {
      if (!m.target || m.target === m.source) continue;
      add(usage, m.target, m.after.cpu, m.after.memoryBytes);
      add(held, m.target, m.after.cpu, m.after.memoryBytes);
    }
    // Streams in and out of each host, counted once (not once per host: 1,000 hosts × 50 moves).
    const inbound = new Map<string, number>();
    const outbound = new Map<string, number>();
    for (const m of inFlight) {
      if (!holdsStream(m) || m.source === m.target) continue;
      if (m.target) inbound.set(m.target, (inbound.get(m.target) ?? 0) + 1);
      if (m.source) outbound.set(m.source, (outbound.get(m.source) ?? 0) + 1);
    }
    return [...names].sort().map((name) => {
      const node = this.nodes.get(name);
      const ready = node?.status?.conditions?.find((c) => c.type === 'Ready');
      return {
        node: name,
        labels: node?.metadata.labels ?? {},
        cordoned: !!node?.spec?.unschedulable,
        fenced: isFenced(node),
        ready: ready ? ready.status === 'True' : undefined,
        agent: agents.get(name),
        used: usage.get(name) ?? { cpu: 0, memoryBytes: 0 },
        heldByMoves: held.get(name) ?? { cpu: 0, memoryBytes: 0 },
        inbound: inbound.get(name) ?? 0,
        outbound: outbound.get(name) ?? 0,
      };
    });
  }
}

const isFenced = (node: NodeObject | undefined): boolean => !!node?.spec?.taints?.some((t) => t.key === OUT_OF_SERVICE_TAINT);

/** Capabilities parsed once per Lease object the cache holds (a renewal brings a new object). */
const parsedCapabilities = new WeakMap<LeaseObject, HostCapabilities | null>();

function capabilitiesOf(lease: LeaseObject, text: string): HostCapabilities | undefined {
  let caps = parsedCapabilities.get(lease);
  if (caps === undefined) {
    try {
      caps = JSON.parse(text) as HostCapabilities;
    } catch {
      caps = null;
    }
    parsedCapabilities.set(lease, caps);
  }
  return caps ?? undefined;
}

export function agentFromLease(lease: LeaseObject, now: number): AgentInfo | undefined {
  const endpoint = lease.metadata.annotations?.[LEASE_ENDPOINT_ANNOTATION];
  const caps = lease.metadata.annotations?.[LEASE_CAPABILITIES_ANNOTATION];
  const node = lease.metadata.labels?.[LEASE_NODE_LABEL] ?? lease.spec.holderIdentity;
  if (!endpoint || !caps || !node) return undefined;
  const capabilities = capabilitiesOf(lease, caps);
  if (!capabilities) return undefined;
  const renewed = lease.spec.renewTime ? Date.parse(lease.spec.renewTime) : 0;
  const expiresAt = renewed + (lease.spec.leaseDurationSeconds ?? 15) * 1000;
  return { node, endpoint, capabilities, alive: expiresAt > now && !!lease.spec.holderIdentity, expiredForSeconds: Math.max(0, (now - expiresAt) / 1000) };
}
