// What a VirtualMachine's next decision reads of the cluster: whether a move holds it, its host's
// agent and Node, and — only for a VM not placed yet, since they walk every VM — the hosts.
import type { VirtualMachine } from '../../api/types';
import type { AgentInfo, ClusterView, HostFacts } from '../clusterView';
import type { ControllerConfig } from '../config';

export interface VmFacts {
  now: Date;
  /** The MoveRequest that status.moveRef names exists, with that UID: the move alone acts on the VM. */
  heldByMove: boolean;
  hosts(): HostFacts[];
  agent(node: string): AgentInfo | undefined;
  /** The node has a Node object. */
  hasNode(node: string): boolean;
  config: Pick<ControllerConfig, 'agentLostAfterSeconds'>;
}

export function observeVm(view: ClusterView, config: VmFacts['config'], vm: VirtualMachine, now: Date): VmFacts {
  const ref = vm.status?.moveRef;
  return {
    now,
    heldByMove: !!ref && view.moves.get(`${vm.metadata.namespace}/${ref.name}`)?.metadata.uid === ref.uid,
    hosts: () => view.hosts(now.getTime()),
    agent: (node) => view.agent(node, now.getTime()),
    hasNode: (node) => !!view.nodes.get(node),
    config,
  };
}
