// The controller process: leader election first, then informers feeding one work queue per kind,
// each drained by its reconciler. Watch events only enqueue keys; all logic is in reconcilers.
import * as http from 'node:http';
import { AgentClient, type TokenProvider } from '../agent/client';
import type { KubeApi } from '../kube/api';
import { EventRecorder } from '../kube/events';
import { LeaderElector } from '../kube/leaderElection';
import { keyOf } from '../kube/paths';
import { WorkQueue, type Reconcile } from '../kube/workQueue';
import { componentLogger } from '../log';
import { isTerminal } from '../machines/vocabulary';
import type { AgentOps } from './agentOps';
import { ClusterView } from './clusterView';
import type { ControllerConfig } from './config';
import { DeadHostRecovery } from './hostevacuation/autoEvacuate';
import { HostEvacuationReconciler } from './hostevacuation/reconciler';
import { watchEvacuations } from './hostevacuation/triggers';
import type { ControllerDeps } from './deps';
import { ControllerMetrics } from './metrics';
import { writersFor } from './writers';
import { MoveRequestReconciler } from './moverequest/reconciler';
import { VirtualMachineReconciler } from './virtualmachine/reconciler';

export interface ControllerOptions {
  api: KubeApi;
  config: ControllerConfig;
  /** Bearer token shown to agents. */
  agentToken: TokenProvider;
  /** Defaults to an AgentClient with agentToken. */
  agents?: AgentOps;
  /** host:port for /metrics, /healthz and /readyz; none when undefined. */
  metricsAddress?: string;
  leaderElection?: boolean;
}

export interface RunningController {
  /** Resolves when the controller stops: 'lost' if another replica took the lease. */
  done: Promise<'lost' | 'stopped'>;
  view: ClusterView;
  metrics: ControllerMetrics;
  stop(): Promise<void>;
}

export function startController(o: ControllerOptions): RunningController {
  const log = componentLogger('controller', { identity: o.config.identity });
  const metrics = new ControllerMetrics();
  const view = new ClusterView(o.api, o.config.namespace, o.config.resyncMs);
  const agents = o.agents ?? new AgentClient({ token: o.agentToken });
  const events = new EventRecorder(o.api, 'vmove-controller', o.config.identity);
  const deps: ControllerDeps = { api: o.api, view, writers: writersFor(o.api, view), agents, events, config: o.config, metrics };

  const counted = (kind: string, r: Reconcile): Reconcile => async (key) => {
    try {
      const res = await r(key);
      metrics.reconciles.inc({ kind, result: 'ok' });
      return res;
    } catch (e) {
      metrics.reconciles.inc({ kind, result: 'error' });
      throw e;
    }
  };
  const moves = new MoveRequestReconciler(deps);
  const vms = new VirtualMachineReconciler(deps);
  const moveQueue = new WorkQueue(counted('MoveRequest', moves.reconcile), { name: 'moverequests', concurrency: o.config.workers });
  const vmQueue = new WorkQueue(counted('VirtualMachine', vms.reconcile), { name: 'virtualmachines', concurrency: o.config.workers });
  // One evacuation plans at a time: two plans made side by side would both count the same free room.
  const evacuations = new HostEvacuationReconciler(deps);
  const evacuationQueue = new WorkQueue(counted('HostEvacuation', evacuations.reconcile), { name: 'hostevacuations', concurrency: 1 });
  const evacuationTriggers = watchEvacuations(view, evacuationQueue);
  const recovery = new DeadHostRecovery(deps);

  // Which requests each VM has, so a VM's change wakes only its own requests.
  const requestsOfVm = new Map<string, Set<string>>();
  const vmKeyOfMove = (mr: { metadata: { namespace?: string }; spec: { vmName: string } }) => `${mr.metadata.namespace}/${mr.spec.vmName}`;
  const wakeRequestsOf = (vmKey: string): void => {
    for (const k of requestsOfVm.get(vmKey) ?? []) moveQueue.add(k);
  };
  /** Moves in flight on a host (its agent or Node changed). */
  const activeMovesOn = (node: string): void => {
    for (const mr of view.moves.list()) {
      if (mr.status?.phase && isTerminal(mr.status.phase)) continue;
      if (mr.status?.sourceNode === node || mr.status?.targetNode === node) moveQueue.add(keyOf(mr));
    }
  };
  /**
   * A slot or some capacity freed: wake the oldest requests still waiting to start or to be placed.
   * Waking all of them on every change would cost O(requests²) with a thousand queued; the rest
   * look again on their own within seconds.
   */
  const wakeWaiting = (): void => {
    const waiting = view.moves
      .list()
      .filter((mr) => !mr.status?.phase || mr.status.phase === 'Pending' || mr.status.phase === 'Scheduling')
      .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
    for (const mr of waiting.slice(0, o.config.limits.parallelMoves * 2 + 8)) moveQueue.add(keyOf(mr));
  };
  const vmsOn = (node: string): void => {
    for (const vm of view.vms.list()) if (vm.status?.nodeName === node || vm.status?.scheduledNode === node || !vm.status?.scheduledNode) vmQueue.add(keyOf(vm));
  };

  view.moves.on({
    onChange: (mr, old) => {
      const key = keyOf(mr);
      const vmKey = vmKeyOfMove(mr);
      if (!requestsOfVm.has(vmKey)) requestsOfVm.set(vmKey, new Set());
      requestsOfVm.get(vmKey)!.add(key);
      moveQueue.add(key);
      const phase = mr.status?.phase;
      if (phase !== old?.status?.phase && (phase === undefined || isTerminal(phase) || old?.status?.phase === 'Pending' || old?.status?.phase === 'Scheduling')) {
        // Ended, or admitted/placed: limits and capacity changed for the others.
        wakeWaiting();
        if (phase && isTerminal(phase)) wakeRequestsOf(vmKey);
      }
    },
    onDelete: (mr) => {
      const vmKey = vmKeyOfMove(mr);
      requestsOfVm.get(vmKey)?.delete(keyOf(mr));
      wakeWaiting();
      wakeRequestsOf(vmKey);
    },
  });
  view.vms.on({
    onChange: (vm) => {
      vmQueue.add(keyOf(vm));
      wakeRequestsOf(keyOf(vm));
    },
    onDelete: (vm) => wakeRequestsOf(keyOf(vm)),
  });
  const hostChanged = (node: string | undefined): void => {
    if (!node) return;
    activeMovesOn(node);
    vmsOn(node);
    evacuationTriggers.hostChanged(node);
  };
  view.leases.on({ onChange: (l, old) => old?.spec.holderIdentity !== l.spec.holderIdentity || !old ? hostChanged(l.metadata.labels?.['vmove.dev/node'] ?? l.spec.holderIdentity) : undefined, onDelete: (l) => hostChanged(l.metadata.labels?.['vmove.dev/node'] ?? l.spec.holderIdentity) });
  view.nodes.on({ onChange: (n) => hostChanged(n.metadata.name), onDelete: (n) => hostChanged(n.metadata.name) });
  // A lease expires without any watch event: look for agents that died (or came back) every 2 s.
  let alive = new Map<string, boolean>();
  const liveness = setInterval(() => {
    const now = new Map(view.agents().map((a) => [a.node, a.alive]));
    for (const [node, isAlive] of now) if (alive.get(node) !== isAlive) hostChanged(node);
    alive = now;
  }, 2_000);
  liveness.unref();

  let server: http.Server | undefined;
  // Ready = able to take over: a standby waiting for the lease is ready; the leader is not
  // until its caches have synced. (Readiness meaning "is the leader" would leave a standby
  // never Ready: a Deployment's rolling update and a PodDisruptionBudget would wait forever.)
  let leading = false;
  let ready = false;
  if (o.metricsAddress) {
    const [host, port] = splitAddress(o.metricsAddress);
    server = http.createServer((req, res) => {
      if (req.url === '/metrics') {
        void metrics.registry.metrics().then((text) => {
          res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
          res.end(text);
        });
      } else if (req.url === '/healthz') {
        res.writeHead(200).end('ok');
      } else if (req.url === '/readyz') {
        const ok = ready || !leading;
        res.writeHead(ok ? 200 : 503).end(ok ? 'ok' : 'leading; caches not synced yet');
      } else res.writeHead(404).end();
    });
    server.listen(port, host);
  }

  const elector = new LeaderElector(o.api, { namespace: o.config.namespace, name: 'vmove-controller', identity: o.config.identity });
  const lead = async (): Promise<void> => {
    leading = true;
    metrics.leader.set(1);
    view.start();
    await view.synced();
    ready = true;
    log.info({ moves: view.moves.list().length, vms: view.vms.list().length, agents: view.agents().length }, 'caches synced; reconciling');
    for (const mr of view.moves.list()) moveQueue.add(keyOf(mr));
    for (const vm of view.vms.list()) vmQueue.add(keyOf(vm));
    evacuationTriggers.all();
    moveQueue.start();
    vmQueue.start();
    evacuationQueue.start();
    if (o.config.autoEvacuateDeadHosts) recovery.start();
  };
  const done =
    o.leaderElection === false
      ? (async () => {
          await lead();
          return new Promise<'stopped'>(() => undefined);
        })()
      : elector.run(() => void lead());
  let stopped: (v: 'stopped') => void;
  const stopPromise = new Promise<'stopped'>((r) => (stopped = r));

  return {
    done: Promise.race([done, stopPromise]).then((how) => {
      metrics.leader.set(0);
      moveQueue.stop();
      vmQueue.stop();
      evacuationQueue.stop();
      recovery.stop();
      view.stop();
      return how;
    }),
    view,
    metrics,
    async stop() {
      clearInterval(liveness);
      moveQueue.stop();
      vmQueue.stop();
      evacuationQueue.stop();
      recovery.stop();
      view.stop();
      await elector.release();
      server?.close();
      stopped('stopped');
    },
  };
}

function splitAddress(a: string): [string, number] {
  const i = a.lastIndexOf(':');
  return [i > 0 ? a.slice(0, i) : '0.0.0.0', Number(a.slice(i + 1))];
}
