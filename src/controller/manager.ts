// The controller process: leader election, the HTTP server (/metrics, /healthz, /readyz), and the
// list of controllers (src/kube/controller.ts), one per kind; each watches what it needs
// (its triggers.ts) and reconciles one key at a time. Nothing here decides anything.
import * as http from 'node:http';
import { AgentClient, type TokenProvider } from '../agent/client';
import type { KubeApi } from '../kube/api';
import { Controller } from '../kube/controller';
import { EventRecorder } from '../kube/events';
import { LeaderElector } from '../kube/leaderElection';
import { componentLogger } from '../log';
import type { AgentOps } from './agentOps';
import { ClusterView } from './clusterView';
import type { ControllerConfig } from './config';
import type { ControllerDeps } from './deps';
import { answeredWaits, FollowedOperations } from './followedOperations';
import { HostChanges } from './hostChanges';
import { DeadHostRecovery } from './hostevacuation/autoEvacuate';
import { HostEvacuationReconciler } from './hostevacuation/reconciler';
import { evacuationWatches } from './hostevacuation/triggers';
import { ControllerMetrics } from './metrics';
import { MoveRequestReconciler } from './moverequest/reconciler';
import { moveWatches } from './moverequest/triggers';
import { VirtualMachineReconciler } from './virtualmachine/reconciler';
import { vmWatches } from './virtualmachine/triggers';
import { writersFor } from './writers';

export interface ControllerOptions {
  api: KubeApi;
  config: ControllerConfig;
  /** Bearer token shown to agents (audience vmove-agent). */
  agentToken: TokenProvider;
  /** PEM of the vmove CA agents' certificates must chain to. */
  agentCa?: () => string;
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
  const view = new ClusterView(o.api, o.config.namespace, o.config.resyncMs, (name) => metrics.runtime.informerRestarted(name), o.config.shard);
  const objects = metrics.watch(view);
  const agents = o.agents ?? new AgentClient({ token: o.agentToken, ...(o.agentCa ? { ca: o.agentCa } : {}) });
  const events = new EventRecorder(o.api, 'vmove-controller', o.config.identity);
  const deps: ControllerDeps = { api: o.api, view, writers: writersFor(o.api, view), agents, events, config: o.config, metrics };
  const hosts = new HostChanges(view);
  hosts.start();
  // One per kind: a MoveRequest and a VM may share a namespace/name key.
  const moveOps = new FollowedOperations(agents, o.config.agentWaitMs, log);
  const vmOps = new FollowedOperations(agents, o.config.agentWaitMs, log);

  const controllers = [
    new Controller({ name: 'MoveRequest', queue: 'moverequests', reconcile: new MoveRequestReconciler(deps, moveOps).reconcile, watches: [...moveWatches(view, hosts, o.config.limits, o.config.priorityAgingSeconds), answeredWaits(moveOps)], concurrency: o.config.workers }, metrics.runtime),
    new Controller({ name: 'VirtualMachine', queue: 'virtualmachines', reconcile: new VirtualMachineReconciler(deps, vmOps).reconcile, watches: [...vmWatches(view, hosts), answeredWaits(vmOps)], concurrency: o.config.workers }, metrics.runtime),
    // One evacuation plans at a time: two plans made side by side would both count the same free room.
    new Controller({ name: 'HostEvacuation', queue: 'hostevacuations', reconcile: new HostEvacuationReconciler(deps).reconcile, watches: evacuationWatches(view, hosts), concurrency: 1 }, metrics.runtime),
  ];
  const recovery = new DeadHostRecovery(deps);

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
        void metrics.scrape().then((text) => {
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
    // A port already taken (a second `make run`, another process) costs the metrics, not the controller.
    server.on('error', (err) => log.error({ err: String(err), address: o.metricsAddress }, 'cannot serve /metrics, /healthz, /readyz'));
    server.listen(port, host);
  }

  metrics.leader.set(0);
  // Each shard elects its own leader.
  const elector = new LeaderElector(o.api, { namespace: o.config.namespace, name: o.config.shard ? `vmove-controller-${o.config.shard}` : 'vmove-controller', identity: o.config.identity });
  const lead = async (): Promise<void> => {
    leading = true;
    metrics.leader.set(1);
    view.start();
    await view.synced();
    objects.start();
    ready = true;
    log.info({ moves: view.moves.list().length, vms: view.vms.list().length, agents: view.agents().length }, 'caches synced; reconciling');
    for (const c of controllers) c.start();
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
      objects.stop();
      for (const c of controllers) c.stop();
      moveOps.stop();
      vmOps.stop();
      recovery.stop();
      view.stop();
      return how;
    }),
    view,
    metrics,
    async stop() {
      hosts.stop();
      for (const c of controllers) c.stop();
      moveOps.stop();
      vmOps.stop();
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
