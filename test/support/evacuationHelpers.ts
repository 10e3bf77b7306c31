// Helpers for evacuation tests on top of vmoveEnv: HostEvacuation manifests, killing and
// reviving a host the way a real one dies (agent gone, Node NotReady as the node lifecycle
// controller would mark it), fencing it, and sampling MoveRequests while an evacuation runs.
import { stringify } from 'yaml';
import type { HostEvacuation, HostEvacuationSpec, MoveRequest, VirtualMachine } from '../../src/api/types';
import { bytesAcross, isTerminal } from '../../src/machines/vocabulary';
import { agentFromLease, type LeaseObject } from '../../src/controller/clusterView';
import { corePath, leasePath, vmovePath } from '../../src/kube/paths';
import type { VmoveEnv } from './vmoveEnv';

export const OUT_OF_SERVICE = 'node.kubernetes.io/out-of-service';

export function evacuationYaml(name: string, spec: Partial<HostEvacuationSpec> & { nodeName: string }): string {
  return stringify({ apiVersion: 'vmove.dev/v1alpha1', kind: 'HostEvacuation', metadata: { name }, spec });
}

export const getEvacuation = (env: VmoveEnv, name: string): Promise<HostEvacuation | undefined> => env.api.find<HostEvacuation>(vmovePath('hostevacuations', { name }));

export async function waitForEvacuation(env: VmoveEnv, name: string, phases: string[], timeoutMs = 120_000): Promise<HostEvacuation> {
  let seen: HostEvacuation | undefined;
  try {
    return await env.waitFor(`HostEvacuation ${name} to reach ${phases.join('|')}`, async () => {
      seen = await getEvacuation(env, name);
      return seen?.status?.phase && phases.includes(seen.status.phase) ? seen : undefined;
    }, timeoutMs);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nlast status: ${JSON.stringify(seen?.status, null, 1)}`);
  }
}

export async function listMoves(env: VmoveEnv, labelSelector?: string): Promise<MoveRequest[]> {
  const q = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
  return (await env.api.get<{ items: MoveRequest[] }>(`${vmovePath('moverequests')}${q}`)).items;
}

export async function listVms(env: VmoveEnv): Promise<VirtualMachine[]> {
  return (await env.api.get<{ items: VirtualMachine[] }>(vmovePath('virtualmachines'))).items;
}

export interface NodeView {
  spec?: { unschedulable?: boolean; taints?: { key: string }[] };
}

export const getNode = (env: VmoveEnv, name: string): Promise<NodeView> => env.api.get<NodeView>(corePath('nodes', { name }));

/** Set the Node's Ready condition, as the node lifecycle controller does (status subresource). */
export async function setNodeReady(env: VmoveEnv, node: string, ready: boolean): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  await env.api.mergePatch(corePath('nodes', { name: node, subresource: 'status' }), {
    status: {
      conditions: [
        ready
          ? { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: now, lastTransitionTime: now }
          : { type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastHeartbeatTime: now, lastTransitionTime: now },
      ],
    },
  });
}

/** The host dies: its agent is SIGKILLed and its Node goes NotReady. */
export async function killHost(env: VmoveEnv, node: string): Promise<void> {
  await env.fleet.kill(env.fleet.agents.get(node));
  await setNodeReady(env, node, false);
}

/** The host comes back: its agent starts again (with its state and VMs) and its Node is Ready. */
export async function reviveHost(env: VmoveEnv, node: string): Promise<void> {
  await env.fleet.addNode(node, { createNode: false });
  await setNodeReady(env, node, true);
}

/** An operator confirms the host is off: the out-of-service taint. */
export async function fence(env: VmoveEnv, node: string): Promise<void> {
  const r = await env.kubectl(['taint', 'nodes', node, `${OUT_OF_SERVICE}=nodeshutdown:NoExecute`]);
  if (r.code !== 0) throw new Error(`kubectl taint failed: ${r.stderr}`);
}

export async function evacuationEvents(env: VmoveEnv, name: string): Promise<{ reason: string; message: string; type: string }[]> {
  const r = await env.kubectl(['get', 'events', '-A', '--field-selector', `involvedObject.kind=HostEvacuation,involvedObject.name=${name}`, '-o', 'json']);
  return (JSON.parse(r.stdout) as { items: { reason: string; message: string; type: string }[] }).items;
}

/** One look at the MoveRequests: what holds limits and what is unfinished. */
export interface MoveSample {
  /** Past Pending, not finished, bytes not across yet (these hold the engine's limits: Verifying and CleaningUp do not). */
  inFlight: number;
  outbound: Map<string, number>;
  inbound: Map<string, number>;
  /** Unfinished MoveRequests (Pending included), by the evacuation that owns them. */
  openByEvacuation: Map<string, number>;
  inFlightByEvacuation: Map<string, number>;
  /** Waiting to start (no phase yet, or Pending), by evacuation. */
  waitingByEvacuation: Map<string, number>;
}

export function sampleOf(moves: MoveRequest[]): MoveSample {
  const s: MoveSample = { inFlight: 0, outbound: new Map(), inbound: new Map(), openByEvacuation: new Map(), inFlightByEvacuation: new Map(), waitingByEvacuation: new Map() };
  const inc = (m: Map<string, number>, k: string | undefined) => k && m.set(k, (m.get(k) ?? 0) + 1);
  for (const mr of moves) {
    const phase = mr.status?.phase;
    if (phase && isTerminal(phase)) continue;
    const evac = mr.metadata.labels?.['vmove.dev/evacuation'];
    inc(s.openByEvacuation, evac);
    if (!phase || phase === 'Pending') {
      inc(s.waitingByEvacuation, evac);
      continue;
    }
    if (bytesAcross(phase)) continue;
    s.inFlight++;
    inc(s.inFlightByEvacuation, evac);
    inc(s.outbound, mr.status?.sourceNode);
    if (phase !== 'Scheduling') inc(s.inbound, mr.status?.targetNode);
  }
  return s;
}

/** Sample the MoveRequests every `intervalMs` until stopped. */
export function sampleMoves(env: VmoveEnv, intervalMs = 100): { stop(): Promise<MoveSample[]> } {
  const samples: MoveSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      samples.push(sampleOf(await listMoves(env)));
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

export const maxOf = (samples: MoveSample[], f: (s: MoveSample) => number): number => Math.max(0, ...samples.map(f));
export const maxIn = (m: Map<string, number>): number => Math.max(0, ...m.values());

/** Where every VM runs, as the hosts say: VM id → nodes running it. */
export async function runningVms(env: VmoveEnv): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const [node, vms] of await env.hostInventory()) {
    for (const v of vms) if (v.state === 'Running') out.set(v.id, [...(out.get(v.id) ?? []), node].sort());
  }
  return out;
}

/** Wait until the node's agent Lease has expired (the controller can no longer count it alive). */
export async function waitAgentGone(env: VmoveEnv, node: string): Promise<void> {
  await env.waitFor(`the agent Lease of ${node} to expire`, async () => {
    const lease = await env.api.find<LeaseObject>(leasePath({ namespace: 'vmove-system', name: `vmove-agent-${node}` }));
    return !!lease && agentFromLease(lease, Date.now())?.alive === false;
  }, 60_000);
}
