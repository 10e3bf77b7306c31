// Is the node being evacuated alive, dead, or neither yet? Pure. Dead needs two independent
// witnesses — the vmove agent stopped renewing its Lease long enough ago, and Kubernetes no longer
// reports the Node Ready — so a lost network link to the agent alone never starts a recovery.
// Even a dead host is only recovered once it is fenced (the out-of-service taint).
import type { MoveMode } from '../../api/types';
import type { HostFacts } from '../clusterView';
import { OUT_OF_SERVICE_TAINT } from '../clusterView';

export type HostState =
  | { state: 'Alive' }
  | { state: 'Dead'; fenced: boolean; why: string }
  /** Not answering, but not known dead yet: nothing is moved or rebuilt while it is so. */
  | { state: 'Unreachable'; why: string };

export function classifyHost(h: HostFacts | undefined, deadHostAfterSeconds: number, node: string): HostState {
  if (h?.agent?.alive) return { state: 'Alive' };
  const notReady = h?.ready !== true;
  const readiness = h?.ready === false ? 'its Node is not Ready' : 'its Node reports no Ready condition';
  if (!h?.agent) {
    const why = `${node} has no vmove agent Lease`;
    return notReady ? { state: 'Dead', fenced: !!h?.fenced, why: `${why} and ${readiness}` } : { state: 'Unreachable', why: `${why}, but its Node is Ready` };
  }
  const expired = Math.round(h.agent.expiredForSeconds);
  if (h.agent.expiredForSeconds < deadHostAfterSeconds) {
    return { state: 'Unreachable', why: `the agent of ${node} stopped renewing its Lease ${expired} s ago; the host counts as dead ${deadHostAfterSeconds} s after that if its Node is not Ready` };
  }
  if (!notReady) return { state: 'Unreachable', why: `the agent of ${node} stopped renewing its Lease ${expired} s ago, but its Node still reports Ready` };
  return { state: 'Dead', fenced: h.fenced, why: `the agent of ${node} stopped renewing its Lease ${expired} s ago and ${readiness}` };
}

/** What status.hostState records: Alive or Dead, nothing while the host is only unreachable. */
export const knownHostState = (h: HostState): 'Alive' | 'Dead' | undefined => (h.state === 'Unreachable' ? undefined : h.state);

export const fenceHint = (node: string): string =>
  `once ${node} is powered off, mark it with \`kubectl taint nodes ${node} ${OUT_OF_SERVICE_TAINT}=nodeshutdown:NoExecute\``;

/** How the VMs of a host in this state move now (the MoveRequests' mode), or why they wait. */
export function howToMove(host: HostState, mode: MoveMode, node: string): { mode?: MoveMode; hold?: string } {
  if (host.state === 'Alive') return { mode };
  if (host.state === 'Unreachable') return { hold: `waiting: ${host.why}` };
  if (!host.fenced) return { hold: `waiting for ${node} to be fenced` };
  if (mode === 'Auto' || mode === 'Rebuild') return { mode: 'Rebuild' };
  return { hold: `mode ${mode} needs the agent of ${node}, which is dead: waiting for it to return (to recover its VMs now, cancel this evacuation and create one with mode Auto or Rebuild)` };
}
