// One cache-keeping writer per kind the controller writes (see src/kube/cachedWriter.ts).
import type { HostEvacuation, MoveRequest, VirtualMachine } from '../api/types';
import type { KubeApi } from '../kube/api';
import { CachedWriter } from '../kube/cachedWriter';
import { corePath, vmovePath } from '../kube/paths';
import type { ClusterView, NodeObject } from './clusterView';

export interface Writers {
  moves: CachedWriter<MoveRequest>;
  vms: CachedWriter<VirtualMachine>;
  evacuations: CachedWriter<HostEvacuation>;
  nodes: CachedWriter<NodeObject>;
}

export const writersFor = (api: KubeApi, view: ClusterView): Writers => ({
  moves: new CachedWriter(api, view.moves, (w) => vmovePath('moverequests', w)),
  vms: new CachedWriter(api, view.vms, (w) => vmovePath('virtualmachines', w)),
  evacuations: new CachedWriter(api, view.evacuations, (w) => vmovePath('hostevacuations', w)),
  nodes: new CachedWriter(api, view.nodes, (w) => corePath('nodes', w)),
});
