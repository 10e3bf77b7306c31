// What every control-plane benchmark needs: a real local control plane, sim agents in this
// process (100 of them cost ~1.3 MiB each), the real controller as its own process, and a watch
// on MoveRequests that records when each one was created, every write to it, and when it ended.
import { mkdtempSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { startAgent, type RunningAgent } from '../agent/agent';
import type { MoveRequest } from '../api/types';
import { issueNodeCert } from '../cluster/agentPki';
import { tlsFilesOfDir } from '../agent/tlsFiles';
import { startControlPlane, type ControlPlane } from '../cluster/controlPlane';
import { createSimImage } from '../drivers/sim';
import { isAlreadyExists, KubeApi } from '../kube/api';
import { corePath, vmovePath } from '../kube/paths';
import { LocalFleet } from '../local/fleet';
import { isTerminal } from '../machines/vocabulary';

export interface MoveRecord {
  name: string;
  createdAt: number;
  writes: number;
  phase?: string;
  endedAt?: number;
  sourceNode?: string;
  targetNode?: string;
  moveType?: string;
  /** status.message: how the move ended (why it failed). */
  message?: string;
}

export interface BenchCluster {
  cp: ControlPlane;
  api: KubeApi;
  fleet: LocalFleet;
  agents: RunningAgent[];
  moves: Map<string, MoveRecord>;
  /** Calls `fn` with every MoveRequest event (to sample limits while moves run). */
  onMove(fn: (mr: MoveRequest) => void): void;
  /** The record of move `key` (namespace/name) once it ended; waits on the watch, not by polling. */
  whenEnded(key: string): Promise<MoveRecord>;
  stop(): Promise<void>;
}

export async function startBenchCluster(o: { nodes: number; cpu?: number; memory?: string; simOptions?: Record<string, unknown>; apiserverArgs?: string[] }): Promise<BenchCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'vmove-bench-'));
  const cp = await startControlPlane({ dir: path.join(dir, 'cluster'), crds: true, rbac: true, ...(o.apiserverArgs ? { apiserverArgs: o.apiserverArgs } : {}) });
  const api = await KubeApi.fromFile(cp.kubeconfigs.admin);
  const fleet = new LocalFleet(api, { dir, controllerKubeconfig: cp.kubeconfigs.controller, agentKubeconfig: cp.kubeconfigs.agent });
  await createSimImage(fleet.imagesDir, 'testguest');
  const agentKc = new KubeConfig();
  agentKc.loadFromFile(cp.kubeconfigs.agent);
  const agents: RunningAgent[] = [];
  for (let i = 0; i < o.nodes; i++) {
    const node = `node-${String(i).padStart(3, '0')}`;
    await fleet.ensureNode(node);
    agents.push(
      await startAgent({
        host: {
          nodeName: node,
          stateDir: path.join(dir, 'nodes', node, 'state'),
          localDir: path.join(dir, 'nodes', node, 'local'),
          sharedDir: fleet.sharedDir,
          imagesDir: fleet.imagesDir,
          migrationAddress: '127.0.0.1',
          migrationPorts: [30_000 + i * 20, 30_000 + i * 20 + 19],
          capacity: { cpu: o.cpu ?? 64, memoryBytes: 256 * 2 ** 30 },
          storage: ['Local', 'SharedFile', 'SharedBlock'],
        },
        driver: 'sim',
        driverOptions: { sim: { bandwidthMiBps: Infinity, diskMiBps: Infinity, ...o.simOptions } },
        tls: tlsFilesOfDir(await issueNodeCert(cp.agentPkiDir, node, ['127.0.0.1'], path.join(dir, 'nodes', node, 'tls'))),
        auth: { mode: 'tokenreview' },
        kubeconfig: agentKc,
        fsync: false,
      }),
    );
  }
  const moves = new Map<string, MoveRecord>();
  const listeners: ((mr: MoveRequest) => void)[] = [];
  const endWaiters = new Map<string, ((rec: MoveRecord) => void)[]>();
  const abort = new AbortController();
  const watchLoop = async () => {
    while (!abort.signal.aborted) {
      try {
        await api.watch<MoveRequest>(vmovePath('moverequests'), { allowWatchBookmarks: false }, (e) => {
          if (e.type === 'BOOKMARK' || e.type === 'ERROR') return;
          const mr = e.object;
          const name = `${mr.metadata.namespace}/${mr.metadata.name}`;
          const rec = moves.get(name) ?? { name, createdAt: Date.parse(mr.metadata.creationTimestamp ?? '') || Date.now(), writes: -1 };
          rec.writes++;
          rec.phase = mr.status?.phase;
          rec.sourceNode = mr.status?.sourceNode;
          rec.targetNode = mr.status?.targetNode;
          rec.moveType = mr.status?.moveType;
          rec.message = mr.status?.message;
          if (rec.phase && isTerminal(rec.phase as never) && !rec.endedAt) {
            rec.endedAt = Date.now();
            for (const w of endWaiters.get(name) ?? []) w(rec);
            endWaiters.delete(name);
          }
          moves.set(name, rec);
          for (const l of listeners) l(mr);
        }, abort.signal);
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  void watchLoop();
  return {
    cp,
    api,
    fleet,
    agents,
    moves,
    onMove: (fn) => listeners.push(fn),
    whenEnded: (key) => {
      const rec = moves.get(key);
      if (rec?.endedAt) return Promise.resolve(rec);
      return new Promise((resolve) => endWaiters.set(key, [...(endWaiters.get(key) ?? []), resolve]));
    },
    async stop() {
      abort.abort();
      await fleet.stop();
      await Promise.all(agents.map((a) => a.stop()));
      api.close();
      await cp.stop();
    },
  };
}

/** Create VMs on the given nodes (by spec.nodeName) and wait until all run. */
export async function createVms(api: KubeApi, vms: { name: string; node: string; labels?: Record<string, string> }[], o: { memory?: string } = {}): Promise<void> {
  const limit = 32;
  // An API server at its limit answers 429, 500 (etcd timed out) or 504: ask again; anything
  // else is the benchmark's own mistake. A create that timed out may still have happened (409 on the retry).
  const busy = (err: unknown): boolean => {
    const status = (err as { status?: number }).status ?? 0;
    return status === 429 || status >= 500;
  };
  const create = async (v: { name: string; node: string; labels?: Record<string, string> }): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      try {
        await api.create(vmovePath('virtualmachines', { namespace: 'default' }), {
          apiVersion: 'vmove.dev/v1alpha1',
          kind: 'VirtualMachine',
          metadata: { name: v.name, namespace: 'default', ...(v.labels ? { labels: v.labels } : {}) },
          spec: { image: 'testguest', cpu: 1, memory: o.memory ?? '256Mi', nodeName: v.node, disks: [{ name: 'root', size: '1Gi', storage: 'SharedFile' }] },
        });
        return;
      } catch (err) {
        if (attempt > 0 && isAlreadyExists(err)) return;
        if (attempt >= 10 || !busy(err)) throw err;
        await sleep(500 * (attempt + 1));
      }
    }
  };
  for (let i = 0; i < vms.length; i += limit) await Promise.all(vms.slice(i, i + limit).map(create));
  for (;;) {
    const list = await api.get<{ items: { status?: { phase?: string } }[] }>(vmovePath('virtualmachines', { namespace: 'default' })).catch((err: unknown) => {
      if (busy(err)) return { items: [] };
      throw err;
    });
    if (list.items.length && list.items.filter((v) => v.status?.phase === 'Running').length >= vms.length) return;
    // Each poll lists every VM: at thousands of VMs, ask less often.
    await sleep(Math.max(250, vms.length / 5));
  }
}

export async function createMove(api: KubeApi, name: string, vmName: string, spec: Record<string, unknown> = {}): Promise<void> {
  await api.create(vmovePath('moverequests', { namespace: 'default' }), {
    apiVersion: 'vmove.dev/v1alpha1',
    kind: 'MoveRequest',
    metadata: { name, namespace: 'default' },
    spec: { vmName, ...spec },
  });
}

/** p50/p99 latency of small writes to the API server, measured now (ConfigMap updates). */
export async function measureApiWrites(api: KubeApi, n = 200): Promise<number[]> {
  const path0 = corePath('configmaps', { namespace: 'default' });
  await api.create(path0, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bench-probe' }, data: { n: '0' } }).catch(() => undefined);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await api.mergePatch(corePath('configmaps', { namespace: 'default', name: 'bench-probe' }), { data: { n: String(i) } });
    out.push(performance.now() - t);
  }
  return out;
}

/** CPU time (user + system) a process used so far, in ms, from /proc/<pid>/stat (clock ticks of 10 ms). */
export function procCpuMs(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10; // utime, stime (fields 14, 15)
  } catch {
    return NaN;
  }
}

/** Resident memory of a process now, in bytes (VmRSS of /proc/<pid>/status). */
export function procRssBytes(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const kib = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kib ? Number(kib) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * When move `name` ended; throws unless it Succeeded. It waits on the benchmark's MoveRequest
 * watch: a thousand moves each polling every few ms cost the machine a fifth of the benchmark
 * process's CPU (--cpu-prof), taken from the API server being measured.
 */
export async function waitEnded(bc: BenchCluster, name: string, timeoutMs = 120_000): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${name} did not finish`)), timeoutMs)));
  try {
    const rec = await Promise.race([bc.whenEnded(`default/${name}`), timeout]);
    if (rec.phase !== 'Succeeded') throw new Error(`${name} ended ${rec.phase} (${rec.message ?? 'no message'})`);
    return rec.endedAt!;
  } finally {
    clearTimeout(timer);
  }
}

export interface BenchControllerOptions {
  parallelMoves: number;
  outboundPerNode: number;
  inboundPerNode: number;
  /** host:port for /metrics, when the benchmark reads the controller's own figures. */
  metricsAddress?: string;
  /** Write the controller's V8 CPU profile into this folder when it exits (Node's --cpu-prof). */
  cpuProfileDir?: string;
}

/** (Re)start the controller with these limits. */
export async function startBenchController(bc: BenchCluster, o: BenchControllerOptions): Promise<void> {
  await stopBenchController(bc);
  bc.fleet.startController([
    '--identity', 'bench',
    '--parallel-moves', String(o.parallelMoves),
    '--outbound-per-node', String(o.outboundPerNode),
    '--inbound-per-node', String(o.inboundPerNode),
    '--workers', '16',
    ...(o.metricsAddress ? ['--metrics-address', o.metricsAddress] : []),
  ], o.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfileDir}`] : []);
}

/** Stop the controller (a clean exit: one profiling with --cpu-prof writes its profile then). */
export async function stopBenchController(bc: BenchCluster): Promise<void> {
  await bc.fleet.kill(bc.fleet.controller, 'SIGTERM');
}
