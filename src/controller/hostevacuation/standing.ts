// Where one VM of an evacuation stands, from the VM and the MoveRequests the evacuation made for
// it: moved off, being moved, to be moved (again), or given up — and why. Pure.
import type { MoveRequest, VirtualMachine } from '../../api/types';
import { moveRecordOf } from '../../machines/record';
import { isTerminal } from '../../machines/vocabulary';
import { attemptOf, CANCELLED_BY_ANNOTATION } from './names';
import { vmHost } from './vms';

/** How a move that ended without moving the VM counts for the evacuation. */
export type MoveEnd =
  /** Worth another attempt (on another host if one fits): it may pass. */
  | { kind: 'Transient'; reason: string }
  /** Would fail again: the VM stays where it is. */
  | { kind: 'Permanent'; reason: string }
  /** Overtaken by events (the host died, the evacuation stopped it): neither a failure nor a retry. */
  | { kind: 'Superseded'; reason: string };

/**
 * Judge a Failed or Cancelled move from what its status persists. The engine already retries a
 * step that failed transiently (policy.maxAttempts, on the same target); a move that still ended
 * Failed after such retries, lost its target host, or found no room on its target is worth another
 * MoveRequest — re-planned, elsewhere if possible. A failure on the first attempt that the engine
 * did not retry (a permanent driver error, a timeout, no convergence) would happen again.
 */
export function judgeEnd(mr: MoveRequest): MoveEnd {
  const message = mr.status?.message ?? 'no reason given';
  if (mr.status?.phase === 'Cancelled') {
    const ours = mr.metadata.annotations?.[CANCELLED_BY_ANNOTATION];
    return ours ? { kind: 'Superseded', reason: ours } : { kind: 'Permanent', reason: `its MoveRequest ${mr.metadata.name} was cancelled` };
  }
  const ctx = moveRecordOf(mr.status)?.context;
  if (!ctx) return { kind: 'Permanent', reason: message };
  const why = ctx.failure ?? message;
  if (ctx.unreachable?.source) return { kind: 'Superseded', reason: `its host was lost during the move: ${why}` };
  if (!ctx.targetNode) return { kind: 'Transient', reason: `its target had no room: ${why}` };
  if (ctx.unreachable?.target) return { kind: 'Transient', reason: `its target host was lost: ${why}` };
  const attempts = ctx.attempt ?? 1;
  if (attempts > 1 && attempts >= (ctx.policy?.maxAttempts ?? attempts)) return { kind: 'Transient', reason: `failed ${attempts} times on ${ctx.targetNode}: ${why}` };
  return { kind: 'Permanent', reason: why };
}

export type Standing =
  /** Off the node — or, `stopped`, stopped and left on it (evacuationStrategy Shutdown). */
  | { kind: 'Done'; latest?: MoveRequest; stopped?: boolean }
  | { kind: 'Moving'; latest: MoveRequest; started: boolean }
  /** Needs a (new) MoveRequest: attempt number, hosts to avoid, and why when it is a retry. */
  | { kind: 'ToMove'; attempt: number; avoid: string[]; latest?: MoveRequest; retry?: string }
  | { kind: 'GaveUp'; latest?: MoveRequest; reason: string };

/**
 * `moves`: the evacuation's MoveRequests for this VM, any order. `vm` undefined: the VM is gone
 * (then only a move that already succeeded keeps it in the evacuation's story).
 */
export function standingOf(vm: VirtualMachine | undefined, moves: MoveRequest[], node: string, maxRetries: number): Standing | undefined {
  const sorted = [...moves].sort((a, b) => attemptOf(a) - attemptOf(b));
  const latest = sorted[sorted.length - 1];
  if (latest && !(latest.status?.phase && isTerminal(latest.status.phase))) {
    return { kind: 'Moving', latest, started: !!latest.status?.phase && latest.status.phase !== 'Pending' };
  }
  const movedOff = latest?.status?.phase === 'Succeeded' && !!latest.status.targetNode && latest.status.targetNode !== node;
  if (!vm) return movedOff ? { kind: 'Done', latest } : undefined;
  // A stopped VM keeps reporting its old node until it starts: the succeeded move is the better witness.
  if (movedOff || vmHost(vm) !== node) return { kind: 'Done', latest };
  let retries = 0;
  const avoid: string[] = [];
  let last: MoveEnd | undefined;
  for (const mr of sorted) {
    if (mr.status?.phase === 'Succeeded') continue;
    const end = judgeEnd(mr);
    last = end;
    if (end.kind === 'Transient') {
      retries++;
      const target = mr.status?.targetNode ?? mr.spec.target?.nodeName;
      if (target && !avoid.includes(target)) avoid.push(target);
    }
  }
  const attempt = (latest ? attemptOf(latest) : 0) + 1;
  if (!latest || !last || latest.status?.phase === 'Succeeded') return { kind: 'ToMove', attempt, avoid, ...(latest ? { latest } : {}) };
  if (last.kind === 'Permanent') return { kind: 'GaveUp', latest, reason: last.reason };
  if (last.kind === 'Transient' && retries > maxRetries) {
    return { kind: 'GaveUp', latest, reason: `${retries} attempt${retries > 1 ? 's' : ''} failed (maxRetries ${maxRetries}); last: ${last.reason}` };
  }
  return { kind: 'ToMove', attempt, avoid, latest, ...(last.kind === 'Transient' ? { retry: last.reason } : {}) };
}
