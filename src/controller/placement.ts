// Where a VM can go, and why every other host cannot. Pure: the facts come in, a choice and the
// reasons come out, so `status.placement`, the evacuation planner and `vmove plan` all say the same.
import type { RejectedNode, StorageKind } from '../api/types';
import { formatBytes } from '../api/quantity';
import type { DriverKind } from '../protocol/host';
import type { HostFacts } from './clusterView';

export interface PlacementNeeds {
  cpu: number;
  memoryBytes: number;
  storage: StorageKind[];
  /** The target must receive a live migration (and a block migration when local disks travel). */
  liveMigration?: boolean;
  blockMigration?: boolean;
  /** Moves stay within one driver kind: disk formats and migration streams differ between them. */
  driver?: DriverKind;
}

export interface PlacementQuery {
  needs: PlacementNeeds;
  /** The VM's current host: never a target of a move. */
  exclude?: string[];
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  inboundLimit: number;
}

export interface PlacementResult {
  nodeName?: string;
  rejected: RejectedNode[];
  /**
   * Every rejection was about something that frees itself: capacity held by moves in flight, or the
   * inbound move limit. The caller may wait (bounded) instead of failing.
   */
  waitable: boolean;
  message: string;
  /** Some host could take the VM but for room now (CPU, memory, inbound moves): nothing else rules it out. */
  capable?: boolean;
}

interface Verdict {
  reason?: string;
  /** This rejection would go away when moves in flight end. */
  transient?: boolean;
  /** Rejected for room only (CPU, memory, the inbound limit). */
  room?: boolean;
}

function judge(h: HostFacts, q: PlacementQuery): Verdict {
  const n = q.needs;
  if (q.exclude?.includes(h.node)) return { reason: "is the VM's current host" };
  if (q.nodeSelector) {
    const miss = Object.entries(q.nodeSelector).find(([k, v]) => h.labels[k] !== v);
    if (miss) return { reason: `does not match nodeSelector ${miss[0]}=${miss[1]}` };
  }
  if (h.fenced) return { reason: 'is fenced (node.kubernetes.io/out-of-service taint)' };
  if (h.cordoned) return { reason: 'is cordoned' };
  if (!h.agent) return { reason: 'has no vmove agent' };
  if (!h.agent.alive) return { reason: `its agent's lease expired ${Math.round(h.agent.expiredForSeconds)} s ago` };
  if (h.ready === false) return { reason: 'Node is not Ready' };
  const caps = h.agent.capabilities;
  if (n.driver && caps.driver !== n.driver) return { reason: `runs driver ${caps.driver}, the VM needs ${n.driver}` };
  const missing = n.storage.filter((s) => !caps.storage.includes(s));
  if (missing.length) return { reason: `lacks storage ${missing.join(', ')}` };
  if (n.liveMigration && !caps.liveMigration) return { reason: 'cannot receive a live migration' };
  if (n.blockMigration && !caps.blockMigration) return { reason: 'cannot receive a block migration' };
  const freeCpu = caps.cpu - h.used.cpu;
  const freeMem = caps.memoryBytes - h.used.memoryBytes;
  if (freeCpu < n.cpu || freeMem < n.memoryBytes) {
    const heldEnough = freeCpu + h.heldByMoves.cpu >= n.cpu && freeMem + h.heldByMoves.memoryBytes >= n.memoryBytes;
    const what =
      freeMem < n.memoryBytes
        ? `not enough memory: needs ${formatBytes(n.memoryBytes)}, ${formatBytes(Math.max(0, freeMem))} free of ${formatBytes(caps.memoryBytes)}`
        : `not enough CPU: needs ${n.cpu}, ${Math.max(0, freeCpu)} free of ${caps.cpu}`;
    return { reason: heldEnough ? `${what} (moves in flight hold the rest)` : what, transient: heldEnough, room: true };
  }
  if (h.inbound >= q.inboundLimit) return { reason: `inbound move limit reached (${q.inboundLimit})`, transient: true, room: true };
  return {};
}

/** Free memory after placing, higher first: spread VMs so no host fills up before the others. */
const score = (h: HostFacts, n: PlacementNeeds): number =>
  (h.agent!.capabilities.memoryBytes - h.used.memoryBytes - n.memoryBytes) / Math.max(1, h.agent!.capabilities.memoryBytes);

export function placeVm(hosts: HostFacts[], q: PlacementQuery): PlacementResult {
  const candidates = q.nodeName ? hosts.filter((h) => h.node === q.nodeName) : hosts;
  if (q.nodeName && candidates.length === 0) {
    return { rejected: [{ nodeName: q.nodeName, reason: 'no such node' }], waitable: false, message: `node ${q.nodeName} does not exist` };
  }
  const rejected: RejectedNode[] = [];
  let allTransient = true;
  const fits: HostFacts[] = [];
  let capable = false;
  for (const h of candidates) {
    const v = judge(h, q);
    if (v.room) capable = true;
    if (v.reason) {
      rejected.push({ nodeName: h.node, reason: v.reason });
      if (!v.transient && !q.exclude?.includes(h.node)) allTransient = false;
    } else fits.push(h);
  }
  if (fits.length === 0) {
    const considered = rejected.filter((r) => !q.exclude?.includes(r.nodeName));
    const waitable = considered.length > 0 && allTransient;
    const summary = considered.map((r) => `${r.nodeName}: ${r.reason}`).join('; ');
    return { rejected, waitable, capable, message: considered.length ? `no host fits — ${summary}` : 'no other host exists' };
  }
  const best = [...fits].sort((a, b) => score(b, q.needs) - score(a, q.needs) || a.node.localeCompare(b.node))[0]!;
  return { nodeName: best.node, rejected, waitable: false, capable: true, message: `placed on ${best.node}` };
}

/** Whether a host has room for a VM to grow in place by `delta`. */
export function hasRoomToGrow(h: HostFacts, delta: { cpu: number; memoryBytes: number }): boolean {
  if (!h.agent) return false;
  const caps = h.agent.capabilities;
  return caps.cpu - h.used.cpu >= delta.cpu && caps.memoryBytes - h.used.memoryBytes >= delta.memoryBytes;
}
