// What a shard's controller takes as its own: the VMs and Nodes its informers select (by
// vmove.dev/shard), the MoveRequests of those VMs, and only its own Nodes as places to put VMs.
import { ClusterView, SHARD_LABEL, type LeaseObject, type NodeObject } from '../../../src/controller/clusterView';
import type { KubeApi } from '../../../src/kube/api';
import type { MoveRequest, VirtualMachine } from '../../../src/api/types';
import { movesInLog } from '../../../src/bench/shardsBench';
import { LEASE_CAPABILITIES_ANNOTATION, LEASE_ENDPOINT_ANNOTATION, LEASE_NODE_LABEL } from '../../../src/protocol/host';

const vm = (name: string): VirtualMachine => ({ apiVersion: 'vmove.dev/v1alpha1', kind: 'VirtualMachine', metadata: { name, namespace: 'default', resourceVersion: '1', labels: { [SHARD_LABEL]: 'a' } }, spec: { image: 'i', cpu: 1, memory: '1Gi', disks: [] } }) as VirtualMachine;
const move = (name: string, vmName: string): MoveRequest => ({ apiVersion: 'vmove.dev/v1alpha1', kind: 'MoveRequest', metadata: { name, namespace: 'default', uid: name, resourceVersion: '1' }, spec: { vmName }, status: { phase: 'Migrating', sourceNode: 'a-1', targetNode: 'a-2', moveType: 'Live' } }) as MoveRequest;
const node = (name: string): NodeObject => ({ metadata: { name, resourceVersion: '1', labels: { [SHARD_LABEL]: 'a' } } }) as NodeObject;
const lease = (n: string): LeaseObject =>
  ({
    metadata: { name: `vmove-agent-${n}`, namespace: 'vmove-system', resourceVersion: '1', labels: { [LEASE_NODE_LABEL]: n }, annotations: { [LEASE_ENDPOINT_ANNOTATION]: `https://${n}`, [LEASE_CAPABILITIES_ANNOTATION]: JSON.stringify({ driver: 'sim', cpu: 8, memoryBytes: 2 ** 34, storage: [] }) } },
    spec: { holderIdentity: n, renewTime: new Date().toISOString(), leaseDurationSeconds: 15 },
  }) as unknown as LeaseObject;

/** A view whose caches hold what shard a's informers would have listed (nothing is started). */
function shardView(shard?: string): ClusterView {
  const view = new ClusterView({} as KubeApi, 'vmove-system', 0, undefined, shard);
  view.vms.writeThrough(vm('mine'));
  for (const n of ['a-1', 'a-2']) view.nodes.writeThrough(node(n));
  for (const n of ['a-1', 'a-2', 'b-1']) view.leases.writeThrough(lease(n));
  for (const m of [move('m1', 'mine'), move('m2', 'theirs')]) view.moves.writeThrough(m);
  return view;
}

test('a shard handles the moves of its own VMs only, and counts only those in flight', () => {
  const view = shardView('a');
  expect(view.ownsMove(move('m1', 'mine'))).toBe(true);
  expect(view.ownsMove(move('m2', 'theirs'))).toBe(false);
  expect(view.movesInFlight().map((m) => m.key)).toEqual(['default/m1']);
  expect(view.ownsNode('a-1')).toBe(true);
  expect(view.ownsNode('b-1')).toBe(false);
});

test("a shard places only on its own Nodes, even where another shard's agent is alive; unsharded, every agent's host counts", () => {
  expect(shardView('a').hosts().map((h) => h.node)).toEqual(['a-1', 'a-2']);
  const all = shardView();
  expect(all.hosts().map((h) => h.node)).toEqual(['a-1', 'a-2', 'b-1']);
  expect(all.ownsMove(move('m2', 'theirs'))).toBe(true);
});

test('the shards benchmark reads which moves a controller handled from its phase log lines', () => {
  const log = ['{"msg":"phase","move":"default/x","to":"Scheduling"}', '{"msg":"caches synced"}', '{"msg":"phase","move":"default/y"}', '{"msg":"phase","move":"default/x"}', '{"msg":"pha'].join('\n');
  expect([...movesInLog(log)]).toEqual(['default/x', 'default/y']);
});
