// May another move start now? Pure: the moves in flight, the moves waiting and the limits decide.
import type { MovePriority, MoveRequest, MoveType, VirtualMachine } from '../api/types';
import { moveRecordOf } from '../machines/record';
import { traitsOf } from '../machines/traits';
import { holdsStream, type HostFacts, type MoveInFlight } from './clusterView';
import type { MoveLimits } from './config';

export type Admission = { ok: true } | { ok: false; reason: string };

/** Label on the MoveRequests an evacuation creates; its value is the evacuation's name. */
export const EVACUATION_LABEL = 'vmove.dev/evacuation';
/** The group of MoveRequests nobody owns. */
export const STANDALONE_GROUP = 'standalone';

/** Moves share the limits fairly between groups: each evacuation's moves are one group, standalone requests another. */
export const moveGroup = (labels: Record<string, string> | undefined): string => {
  const evacuation = labels?.[EVACUATION_LABEL];
  return evacuation ? `evacuation/${evacuation}` : STANDALONE_GROUP;
};

/** Rank of each priority class: lower goes first. */
export const PRIORITY_RANK: Record<MovePriority, number> = { Critical: 0, Maintenance: 1, User: 2 };
export const DEFAULT_PRIORITY_AGING_SECONDS = 120;

/**
 * A waiting move's class as the scheduler sees it: its spec.priority, raised one class for every
 * `agingSeconds` since the request was made (User → Maintenance → Critical), so no move waits
 * for ever behind a stream of higher ones. Pure.
 */
export function effectiveRank(priority: MovePriority | undefined, since: string, nowMs: number, agingSeconds: number): number {
  const base = PRIORITY_RANK[priority ?? 'User'];
  const born = Date.parse(since);
  if (!Number.isFinite(born) || agingSeconds <= 0) return base;
  return Math.max(0, base - Math.floor(Math.max(0, nowMs - born) / 1000 / agingSeconds));
}

/** A move ready to start but for the limits: it competes for the next free slot. */
export interface Contender {
  uid: string;
  /** namespace/name; breaks ties. */
  key: string;
  group: string;
  source: string;
  moveType: MoveType;
  /** Creation time: within a group, the oldest goes first. */
  since: string;
  /** effectiveRank: the highest class (lowest rank) is served first. Absent: Critical's 0. */
  rank?: number;
}

/** Who else wants a slot, and which group every move belongs to. */
export interface Competition {
  waiting: Contender[];
  /** Group of every known move by UID (those in flight included). */
  groupOf: ReadonlyMap<string, string>;
}

/** Resizes in place move no bytes between hosts: the transfer limits do not apply to them. */
const transfers = (m: Pick<MoveInFlight, 'moveType'>): boolean => traitsOf(m.moveType).transfers;

export function admitMove(
  candidate: { uid: string; source: string; moveType: MoveType },
  inFlight: MoveInFlight[],
  limits: MoveLimits,
  competition?: Competition,
): Admission {
  if (!transfers(candidate)) return { ok: true };
  // Moves past their transfer (verifying, cleaning up) hold no stream: the next one may stream meanwhile.
  const others = inFlight.filter((m) => m.uid !== candidate.uid && holdsStream(m));
  if (others.length >= limits.parallelMoves) {
    return { ok: false, reason: waitingForSlot(limits) };
  }
  const outbound = others.filter((m) => m.source === candidate.source && m.target !== candidate.source).length;
  if (outbound >= limits.outboundPerNode) {
    return { ok: false, reason: `waiting for a free slot on ${candidate.source}: ${limits.outboundPerNode} moves at a time may leave a node` };
  }
  return competition ? fairTurn(candidate, others, limits, competition) : { ok: true };
}

/**
 * Hand the free slots out one at a time, each to the waiting move of the highest priority class
 * (after aging), then of the group with the fewest moves in flight, then the oldest, skipping moves whose source node is at its outbound limit;
 * the candidate may start only if it is among those served. So one evacuation cannot take every
 * slot while others wait, and two evacuations progress side by side.
 */
function fairTurn(candidate: { uid: string; source: string; moveType: MoveType }, others: MoveInFlight[], limits: MoveLimits, c: Competition): Admission {
  const busy = new Set(others.map((m) => m.uid));
  const inFlightOf = new Map<string, number>();
  const leaving = new Map<string, number>();
  for (const m of others) {
    const g = c.groupOf.get(m.uid) ?? STANDALONE_GROUP;
    inFlightOf.set(g, (inFlightOf.get(g) ?? 0) + 1);
    if (m.source && m.target !== m.source) leaving.set(m.source, (leaving.get(m.source) ?? 0) + 1);
  }
  const pool = c.waiting.filter((w) => transfers(w) && !busy.has(w.uid));
  const own = pool.find((w) => w.uid === candidate.uid);
  const candidateGroup = own?.group ?? c.groupOf.get(candidate.uid) ?? STANDALONE_GROUP;
  if (!own) pool.push({ uid: candidate.uid, key: '', group: candidateGroup, source: candidate.source, moveType: candidate.moveType, since: '' });

  const served: Contender[] = [];
  for (let free = limits.parallelMoves - others.length; free > 0; free--) {
    let best: Contender | undefined;
    for (const w of pool) {
      if ((leaving.get(w.source) ?? 0) >= limits.outboundPerNode) continue;
      if (!best || before(w, best, inFlightOf)) best = w;
    }
    if (!best) break;
    if (best.uid === candidate.uid) return { ok: true };
    served.push(best);
    pool.splice(pool.indexOf(best), 1);
    inFlightOf.set(best.group, (inFlightOf.get(best.group) ?? 0) + 1);
    leaving.set(best.source, (leaving.get(best.source) ?? 0) + 1);
  }
  return { ok: false, reason: waitingForSlot(limits) };
}

/**
 * One sentence for every wait on the cluster's limit, whether the slots are all taken or free
 * ones went to others: every waiting MoveRequest shows it in its status, and a sentence that
 * changed with each move starting or ending would rewrite all of them each time.
 */
const waitingForSlot = (limits: MoveLimits): string =>
  `waiting for a free slot: ${limits.parallelMoves} moves at a time in the cluster, shared between evacuations and other moves (highest priority first, then the group with the fewest in flight, then the oldest request)`;

function before(a: Contender, b: Contender, inFlightOf: Map<string, number>): boolean {
  const ra = a.rank ?? 0;
  const rb = b.rank ?? 0;
  if (ra !== rb) return ra < rb;
  const na = inFlightOf.get(a.group) ?? 0;
  const nb = inFlightOf.get(b.group) ?? 0;
  if (na !== nb) return na < nb;
  if (a.since !== b.since) return a.since < b.since;
  return a.key < b.key;
}

/** What the MoveRequest engine's Pending state checks besides the limits. */
export interface ReadinessFacts {
  vm: (key: string) => VirtualMachine | undefined;
  host: (node: string) => Pick<HostFacts, 'agent' | 'fenced'> | undefined;
  now: Date;
  /** --priority-aging-seconds (default DEFAULT_PRIORITY_AGING_SECONDS). */
  agingSeconds?: number;
}

/**
 * The moves that wait in Pending only for the limits: their machine exists, their backoff is
 * over, their VM is free, and their source can act (or, for a rebuild, is fenced). Moves waiting
 * for anything else do not compete, so they never hold a slot they cannot use.
 */
export function competition(moves: MoveRequest[], f: ReadinessFacts): Competition {
  const groupOf = new Map<string, string>();
  const waiting: Contender[] = [];
  for (const mr of moves) {
    const uid = mr.metadata.uid ?? '';
    const group = moveGroup(mr.metadata.labels);
    groupOf.set(uid, group);
    if (mr.status?.phase !== 'Pending' || mr.spec.cancel || mr.metadata.deletionTimestamp) continue;
    const record = moveRecordOf(mr.status);
    const ctx = record?.context;
    if (record?.state !== 'Pending' || !ctx?.sourceNode) continue;
    if (ctx.notBefore && f.now.getTime() < Date.parse(ctx.notBefore)) continue;
    const vm = f.vm(`${mr.metadata.namespace}/${mr.spec.vmName}`);
    if (!vm || vm.metadata.deletionTimestamp) continue;
    if (vm.status?.moveRef && vm.status.moveRef.uid !== uid) continue;
    const source = f.host(ctx.sourceNode);
    if (!source?.agent?.alive && !(traitsOf(record.type).startsFromFencedSource && source?.fenced)) continue;
    const since = mr.metadata.creationTimestamp ?? '';
    const rank = effectiveRank(mr.spec.priority, since, f.now.getTime(), f.agingSeconds ?? DEFAULT_PRIORITY_AGING_SECONDS);
    waiting.push({ uid, key: `${mr.metadata.namespace}/${mr.metadata.name}`, group, source: ctx.sourceNode, moveType: record.type, since, rank });
  }
  return { waiting, groupOf };
}
