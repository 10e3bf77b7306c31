// May another move start now? Pure: the moves in flight and the limits decide.
import type { MoveInFlight } from './clusterView';
import type { MoveLimits } from './config';

export type Admission = { ok: true } | { ok: false; reason: string };

/** Resizes in place move no bytes between hosts: the transfer limits do not apply to them. */
const transfers = (m: Pick<MoveInFlight, 'moveType'>): boolean => m.moveType !== 'ResizeInPlace';

export function admitMove(candidate: { uid: string; source: string; moveType: string }, inFlight: MoveInFlight[], limits: MoveLimits): Admission {
  if (!transfers(candidate)) return { ok: true };
  const others = inFlight.filter((m) => m.uid !== candidate.uid && transfers(m));
  if (others.length >= limits.parallelMoves) {
    return { ok: false, reason: `${others.length} moves are in flight in the cluster (limit ${limits.parallelMoves})` };
  }
  const outbound = others.filter((m) => m.source === candidate.source && m.target !== candidate.source).length;
  if (outbound >= limits.outboundPerNode) {
    return { ok: false, reason: `${outbound} moves are leaving ${candidate.source} (limit ${limits.outboundPerNode} per node)` };
  }
  return { ok: true };
}
