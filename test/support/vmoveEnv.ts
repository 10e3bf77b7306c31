// The whole of vmove on one machine for integration and end-to-end tests: a real control plane
// (startTestCluster), Node objects, one real agent process per node, the real controller
// process, and helpers that look at the result as a user (kubectl) and as the hosts (agents).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import type { MoveRequest, VirtualMachine } from '../../src/api/types';
import { AgentClient } from '../../src/agent/client';
import { AGENT_AUDIENCE } from '../../src/protocol/host';
import { CA_CERT } from '../../src/cluster/agentPki';
import { tokenFromTokenRequest } from '../../src/kube/audienceToken';
import { agentFromLease, type LeaseObject } from '../../src/controller/clusterView';
import type { VmInfo } from '../../src/protocol/vm';
import { KubeApi } from '../../src/kube/api';
import { leasePath, vmovePath } from '../../src/kube/paths';
import { LocalFleet, type NodeOptions } from '../../src/local/fleet';
import { startTestCluster, type TestCluster } from './testCluster';
import { pollUntil } from './poll';

export interface VmoveEnv {
  cluster: TestCluster;
  api: KubeApi;
  fleet: LocalFleet;
  dir: string;
  kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** `kubectl apply -f -`; throws with kubectl's message when refused. */
  apply(yaml: string): Promise<void>;
  vm(name: string, namespace?: string): Promise<VirtualMachine | undefined>;
  move(name: string, namespace?: string): Promise<MoveRequest | undefined>;
  waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs?: number): Promise<T>;
  /** Wait until the MoveRequest's phase is one of `phases`. */
  waitForMove(name: string, phases: string[], timeoutMs?: number, namespace?: string): Promise<MoveRequest>;
  /** Every VM every live agent holds, by node (what the hosts say, not what the API says). */
  hostInventory(): Promise<Map<string, VmInfo[]>>;
  /** Nodes whose agent runs the VM now. */
  runningOn(vmName: string, namespace?: string): Promise<string[]>;
  /** Tail of a fleet process's log, for failure messages. */
  logTail(process: string, lines?: number): string;
  stop(): Promise<void>;
}

export interface EnvOptions {
  nodes: (string | ({ name: string } & NodeOptions))[];
  nodeDefaults?: NodeOptions;
  controller?: boolean;
  controllerArgs?: string[];
  /** Images folder the agents share (the guest kit's for the qemu and libvirt drivers). */
  imagesDir?: string;
}

export async function startVmoveEnv(o: EnvOptions): Promise<VmoveEnv> {
  const cluster = await startTestCluster();
  const dir = mkdtempSync(path.join(tmpdir(), 'vmove-env-'));
  const api = await KubeApi.fromFile(cluster.kubeconfig);
  const fleet = new LocalFleet(api, { dir, controllerKubeconfig: cluster.controllerKubeconfig, agentKubeconfig: cluster.agentKubeconfig, ...(o.imagesDir ? { imagesDir: o.imagesDir } : {}) }, o.nodeDefaults);
  // The controller's identity as agents accept it: an audience-bound token, over HTTPS with the vmove CA.
  const controllerKc = await KubeApi.fromFile(cluster.controllerKubeconfig);
  const agentToken = tokenFromTokenRequest(controllerKc, { namespace: 'vmove-system', serviceAccount: 'vmove-controller', audience: AGENT_AUDIENCE });
  const agentCa = readFileSync(path.join(fleet.agentPkiDir, CA_CERT), 'utf8');
  const agents = new AgentClient({ token: agentToken, ca: () => agentCa, timeoutMs: 5_000 });

  const env: VmoveEnv = {
    cluster,
    api,
    fleet,
    dir,
    kubectl: (args, input) => cluster.kubectl(args, input === undefined ? {} : { input }),
    async apply(yaml) {
      const r = await cluster.kubectl(['apply', '-f', '-'], { input: yaml });
      if (r.code !== 0) throw new Error(`kubectl apply refused: ${r.stderr.trim()}`);
    },
    vm: (name, namespace = 'default') => api.find<VirtualMachine>(vmovePath('virtualmachines', { namespace, name })),
    move: (name, namespace = 'default') => api.find<MoveRequest>(vmovePath('moverequests', { namespace, name })),
    waitFor: (what, probe, timeoutMs = 60_000) => pollUntil(what, probe, { timeoutMs, retryErrors: true, context: () => `controller log:\n${env.logTail('controller')}` }),
    async waitForMove(name, phases, timeoutMs = 60_000, namespace = 'default') {
      let seen: MoveRequest | undefined;
      try {
        return await env.waitFor(`MoveRequest ${name} to reach ${phases.join('|')}`, async () => {
          seen = await env.move(name, namespace);
          return seen?.status?.phase && phases.includes(seen.status.phase) ? seen : undefined;
        }, timeoutMs);
      } catch (e) {
        throw new Error(`${(e as Error).message}\nlast status: ${JSON.stringify({ ...seen?.status, machine: undefined }, null, 1)}`);
      }
    },
    async hostInventory() {
      const leases = await api.get<{ items: LeaseObject[] }>(leasePath({ namespace: 'vmove-system' }));
      const out = new Map<string, VmInfo[]>();
      for (const l of leases.items) {
        const a = agentFromLease(l, Date.now());
        if (!a || !fleet.agents.get(a.node) || fleet.agents.get(a.node)!.child.exitCode !== null) continue;
        try {
          out.set(a.node, await agents.listVms({ endpoint: a.endpoint, node: a.node }));
        } catch {
          // an agent that is down holds nothing we can see
        }
      }
      return out;
    },
    async runningOn(vmName, namespace = 'default') {
      const id = `${namespace}_${vmName}`;
      const inv = await env.hostInventory();
      return [...inv.entries()].filter(([, vms]) => vms.some((v) => v.id === id && v.state === 'Running')).map(([node]) => node).sort();
    },
    logTail(name, lines = 40) {
      try {
        return readFileSync(path.join(dir, 'logs', `${name}.log`), 'utf8').trim().split('\n').slice(-lines).join('\n');
      } catch {
        return '(no log)';
      }
    },
    async stop() {
      await fleet.stop();
      api.close();
      controllerKc.close();
      await agents.close();
      await cluster.stop();
      // The folder (agents' and controller's logs, sim disks, guests' consoles) goes with the
      // environment, unless a test of this file failed or VMOVE_E2E_KEEP=1 asks to keep it.
      const failed = (globalThis as { __vmoveTestFailed?: boolean }).__vmoveTestFailed === true;
      if (failed || process.env.VMOVE_E2E_KEEP === '1') console.log(`kept ${dir}${failed ? ' (a test failed)' : ''}`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    for (const n of o.nodes) {
      const spec = typeof n === 'string' ? { name: n } : n;
      await fleet.addNode(spec.name, spec);
    }
    if (o.controller !== false) fleet.startController(o.controllerArgs ?? []);
    await env.waitFor('agents to hold their leases', async () => {
      const leases = await api.get<{ items: LeaseObject[] }>(leasePath({ namespace: 'vmove-system' }));
      const alive = leases.items.map((l) => agentFromLease(l, Date.now())).filter((a) => a?.alive).length;
      return alive >= o.nodes.length;
    }, 30_000);
  } catch (e) {
    await env.stop();
    throw e;
  }
  return env;
}

/** A VirtualMachine manifest with small defaults. */
export function vmYaml(name: string, o: { node?: string; storage?: 'Local' | 'SharedFile' | 'SharedBlock'; cpu?: number; memory?: string; running?: boolean; annotations?: Record<string, string>; image?: string; kernelArgs?: string } = {}): string {
  const ann = Object.entries(o.annotations ?? {});
  return [
    'apiVersion: vmove.dev/v1alpha1',
    'kind: VirtualMachine',
    'metadata:',
    `  name: ${name}`,
    '  namespace: default',
    ...(ann.length ? ['  annotations:', ...ann.map(([k, v]) => `    ${k}: "${v}"`)] : []),
    'spec:',
    `  image: ${o.image ?? 'testguest'}`,
    `  cpu: ${o.cpu ?? 1}`,
    `  memory: ${o.memory ?? '256Mi'}`,
    ...(o.node ? [`  nodeName: ${o.node}`] : []),
    ...(o.running === false ? ['  running: false'] : []),
    ...(o.kernelArgs ? [`  kernelArgs: "${o.kernelArgs}"`] : []),
    '  disks:',
    '    - name: root',
    '      size: 1Gi',
    `      storage: ${o.storage ?? 'SharedFile'}`,
    '',
  ].join('\n');
}

/** A MoveRequest manifest. */
export function moveYaml(name: string, vmName: string, spec: Record<string, unknown> = {}): string {
  return stringify({ apiVersion: 'vmove.dev/v1alpha1', kind: 'MoveRequest', metadata: { name, namespace: 'default' }, spec: { vmName, ...spec } });
}
