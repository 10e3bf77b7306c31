// What a move's next decision reads of the cluster, at one instant: its VM, the hosts (counting
// the moves this process admitted or placed a moment ago), the competition for slots, the agents.
// Reading only. The costly facts are asked for, not gathered up front: hosts and competition walk
// every VM and request, and most looks need neither (a move in a step needs only two agents).
import type { MoveRequest, VirtualMachine } from '../../api/types';
import type { AgentInfo, ClusterView, HostFacts, MoveInFlight } from '../clusterView';
import type { ControllerConfig } from '../config';
import { competition, type Competition } from '../limits';
import type { CompetitionMemo } from './competitionMemo';
import type { MoveReservations } from './reservations';

export interface MoveFacts {
  now: Date;
  vm?: VirtualMachine;
  /** Every host, with the moves in flight (also those only this process knows of yet) counted. */
  hosts(): HostFacts[];
  inFlight(): MoveInFlight[];
  /** Who else waits for a slot, and every move's group (at most COMPETITION_REUSE_MS old). */
  competition(): Competition;
  /** The agent of a node, alive or not as of `now`. */
  agent(node: string): AgentInfo | undefined;
  /** Whether the node is fenced (out-of-service taint). */
  fenced(node: string): boolean;
  config: Pick<ControllerConfig, 'limits' | 'schedulingWaitSeconds' | 'agentLostAfterSeconds' | 'priorityAgingSeconds'>;
}

export const vmKeyOf = (mr: MoveRequest): string => `${mr.metadata.namespace}/${mr.spec.vmName}`;

export function observeMove(view: ClusterView, reservations: MoveReservations, memo: CompetitionMemo, config: MoveFacts['config'], mr: MoveRequest, now: Date): MoveFacts {
  let hosts: HostFacts[] | undefined;
  const hostsNow = (): HostFacts[] => (hosts ??= reservations.hosts(now));
  // The competition reads only whether each source can act: its agent and its fencing, not the
  // capacity of every host.
  const compete = (): Competition =>
    competition(
      view.moves.list().filter((m) => view.ownsMove(m)),
      { vm: (k) => view.vms.get(k), host: (n) => ({ agent: view.agent(n, now.getTime()), fenced: view.fenced(n) }), now, agingSeconds: config.priorityAgingSeconds },
    );
  return {
    now,
    vm: view.vms.get(vmKeyOf(mr)),
    hosts: hostsNow,
    inFlight: () => reservations.inFlight(),
    competition: () => memo.get(mr.metadata.uid ?? '', now, compete),
    agent: (node) => view.agent(node, now.getTime()),
    fenced: (node) => view.fenced(node),
    config,
  };
}
