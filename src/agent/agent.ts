// The node agent, assembled: driver, operation executor, HTTP server, and — with a kubeconfig —
// the Lease heartbeat and the VM status reporter. `startAgent` is what the CLI runs, and what
// tests, the demo and the benchmark call to run many agents in one process.
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Driver, HostConfig } from '../drivers/driver';
import type { DriverKind } from '../protocol/host';
import type { VmInfo } from '../protocol/vm';
import { KubeApi } from '../kube/api';
import { EventRecorder } from '../kube/events';
import { createDriver, type DriverOptions } from '../drivers/registry';
import { componentLogger } from '../log';
import {
  AGENT_AUDIENCE,
  DEFAULT_ALLOWED,
  SHARED_SECRET_USERNAME,
  SharedSecretAuthenticator,
  TokenReviewAuthenticator,
  type AllowedIdentities,
  type Authenticator,
} from './auth';
import { AgentClient, type TokenProvider } from './client';
import { tokenFromTokenRequest, type TokenSource } from '../kube/audienceToken';
import { readTlsMaterial, watchTlsFiles, type AgentTlsFiles } from './tlsFiles';
import { AgentLease } from './lease';
import { AgentMetrics } from './metrics';
import { LeftoverCollector, leftoverReason } from './leftovers';
import { OperationExecutor } from './operations';
import { createAgentServer } from './server';
import { VmStatusReporter } from './vmReporter';

export type AgentAuth = { mode: 'shared-secret'; secret: string } | { mode: 'tokenreview'; cacheTtlMs?: number };

export interface AgentOptions {
  host: HostConfig;
  /** A driver kind to create, or a ready driver (kept open on stop: its owner closes it). */
  driver: DriverKind | Driver;
  driverOptions?: DriverOptions;
  /** `HOST:PORT` to listen on; port 0 picks a free one. Default 127.0.0.1:0. */
  listen?: string;
  /** URL other parties reach this agent at; default https://<listen host>:<port>. */
  endpoint?: string;
  /** Certificate (naming this node), key and vmove CA: the API serves HTTPS with them, re-read when they change. */
  tls?: AgentTlsFiles;
  /** Serve plain HTTP instead (debugging only; warned about at every start). Needed when `tls` is absent. */
  insecureHttp?: boolean;
  auth: AgentAuth;
  /**
   * The token this agent shows other agents (cold moves pull disks from the source's). Default
   * with tokenreview: a TokenRequest for `peerServiceAccount` with the agent audience.
   */
  peerToken?: TokenSource;
  /** Default vmove-system/vmove-agent. */
  peerServiceAccount?: { namespace: string; name: string };
  allowed?: AllowedIdentities;
  /** API server access: Lease heartbeat, VM status reports, TokenReview, own token. */
  kubeconfig?: KubeConfig;
  leaseNamespace?: string;
  leaseRenewMs?: number;
  reportIntervalMs?: number;
  /** How long a copy of a VM must look left over (leftovers.ts) before it is removed. Default 30 s. */
  leftoverGraceMs?: number;
  /** Migration poll interval (ms). */
  pollMs?: number;
  /** fsync operation records (default true). */
  fsync?: boolean;
  /**
   * Watch every VirtualMachine in the cluster, as agents did before they watched only their
   * node's (--watch-all-vms). For comparison only (the moves benchmark's "before").
   */
  watchAllVms?: boolean;
}

export interface RunningAgent {
  node: string;
  endpoint: string;
  driver: Driver;
  executor: OperationExecutor;
  /** What it serves on /metrics (the benchmark reads the watch counters in process). */
  metrics: AgentMetrics;
  /** Stop serving and heartbeating; VMs keep running. The Lease is left to expire. */
  stop(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen: expected HOST:PORT, got "${listen}"`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** The bearer token this agent presents to other agents: audience-bound, issued for its ServiceAccount. */
function ownToken(opts: AgentOptions, api: () => Promise<KubeApi>): TokenProvider {
  const auth = opts.auth;
  if (auth.mode === 'shared-secret') return () => auth.secret;
  if (opts.peerToken) return opts.peerToken;
  if (!opts.kubeconfig) throw new Error('tokenreview auth needs a kubeconfig');
  const sa = opts.peerServiceAccount ?? { namespace: 'vmove-system', name: 'vmove-agent' };
  let source: TokenSource | undefined;
  return async () => {
    source ??= tokenFromTokenRequest(await api(), { namespace: sa.namespace, serviceAccount: sa.name, audience: AGENT_AUDIENCE });
    return source();
  };
}

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const node = opts.host.nodeName;
  const log = componentLogger('agent', { node });
  const ownsDriver = typeof opts.driver === 'string';
  const driver = typeof opts.driver === 'string' ? await createDriver(opts.driver, opts.host, opts.driverOptions) : opts.driver;
  const parts: {
    executor?: OperationExecutor;
    closeServer?: () => Promise<void>;
    stopTlsWatch?: () => void;
    peers?: AgentClient;
    reporter?: VmStatusReporter;
    lease?: AgentLease;
    api?: KubeApi;
  } = {};
  // Heartbeat and reports stop first; then operations (waking long polls, which answers them),
  // then the server; the driver last — its VMs keep running.
  const shutdown = async () => {
    const step = (what: string, fn: () => Promise<void> | undefined) =>
      Promise.resolve(fn()).catch((err: unknown) => log.warn({ err, what }, 'shutdown step failed'));
    await step('lease', () => parts.lease?.stop());
    await step('reporter', () => parts.reporter?.stop());
    await step('executor', () => parts.executor?.close());
    await step('server', () => parts.closeServer?.());
    parts.stopTlsWatch?.();
    await step('peers', () => parts.peers?.close());
    parts.api?.close();
    if (ownsDriver) await step('driver', () => driver.close());
  };
  const metrics = new AgentMetrics();
  try {
    if (!opts.tls && !opts.insecureHttp) throw new Error(`agent ${node}: no TLS certificate given (--tls-dir, or --tls-cert-file/--tls-key-file/--tls-ca-file); plain HTTP only with --insecure-http`);
    const tls = opts.tls ? readTlsMaterial(opts.tls) : undefined;
    let caPem = tls?.ca;
    // TokenReview mode cannot work without the API server: say so before anything starts.
    if (opts.auth.mode !== 'shared-secret') requireKubeconfig(opts);
    let apiReady: Promise<KubeApi> | undefined;
    const kubeApi = (): Promise<KubeApi> => (apiReady ??= KubeApi.fromKubeConfig(requireKubeconfig(opts)).then((a) => (parts.api = a)));
    const peers = new AgentClient({ token: ownToken(opts, kubeApi), ...(tls ? { ca: () => caPem! } : {}) });
    parts.peers = peers;
    const executor = await OperationExecutor.open({
      driver,
      metrics,
      stateDir: opts.host.stateDir,
      fetchDisk: (endpoint, vmId, disk, signal) => peers.readDisk(endpoint, vmId, disk, signal),
      ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
      ...(opts.fsync !== undefined ? { fsync: opts.fsync } : {}),
    });
    parts.executor = executor;

    const authenticator: Authenticator =
      opts.auth.mode === 'shared-secret'
        ? new SharedSecretAuthenticator(opts.auth.secret)
        : new TokenReviewAuthenticator(kubeApi, { ...(opts.auth.cacheTtlMs !== undefined ? { cacheTtlMs: opts.auth.cacheTtlMs } : {}) });
    const baseAllowed = opts.allowed ?? DEFAULT_ALLOWED;
    const allowed: AllowedIdentities =
      opts.auth.mode === 'shared-secret'
        ? { ...baseAllowed, controller: [...baseAllowed.controller, SHARED_SECRET_USERNAME] }
        : baseAllowed;

    const server = createAgentServer({ executor, driver, authenticator, allowed, metrics, ...(tls ? { tls } : {}) });
    if (opts.tls && 'setSecureContext' in server) {
      const files = opts.tls;
      parts.stopTlsWatch = watchTlsFiles(files, (m) => {
        server.setSecureContext({ cert: m.cert, key: m.key });
        caPem = m.ca;
        log.info({ cert: files.certFile }, 'serving the renewed certificate');
      });
    }
    if (!tls) log.warn('serving plain HTTP (--insecure-http): bearer tokens and operations cross the network unencrypted; debugging only');
    const { host, port } = parseListen(opts.listen ?? '127.0.0.1:0');
    server.listen({ host, port });
    await once(server, 'listening');
    parts.closeServer = async () => {
      server.closeIdleConnections();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Disk streams still being read get a moment, then their connections are cut.
      const cut = setTimeout(() => server.closeAllConnections(), 2_000);
      await closed;
      clearTimeout(cut);
    };
    const bound = (server.address() as AddressInfo).port;
    const endpoint = opts.endpoint ?? `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${bound}`;

    if (opts.kubeconfig) {
      const api = await kubeApi();
      const events = new EventRecorder(api, 'vmove-agent', node);
      const graceMs = opts.leftoverGraceMs ?? 30_000;
      // Decided again under the VM's lock, from fresh facts: nothing may have run on it since.
      const removeLeftover = (info: VmInfo) =>
        executor.housekeep(info.id, async () => {
          const now = (await driver.list()).find((v) => v.id === info.id);
          const vm = await reporter.fresh(info.id);
          const reason = now && now.uid === info.uid ? leftoverReason(now, vm, node) : undefined;
          if (!now || !reason || (executor.lastActivity(info.id) ?? 0) > Date.now() - graceMs) return;
          if (now.state !== 'Stopped') await driver.stop(info.id);
          await driver.undefine(info.id, { deleteLocalDisks: true, deleteSharedDisks: false });
          log.info({ vm: info.id, state: now.state, reason }, 'removed a leftover copy of a VM');
          if (vm?.metadata.uid === info.uid) {
            events.record(vm, 'Normal', 'LeftoverRemoved', `${node} removed its ${now.state.toLowerCase()} copy of the VM (definition and local disks): ${reason}`);
          }
        });
      const reporter: VmStatusReporter = new VmStatusReporter({
        kubeconfig: opts.kubeconfig,
        api,
        node,
        driver,
        listFailed: () => metrics.driverErrors.inc({ driver: driver.kind, kind: 'report' }),
        received: (r) => metrics.watchReceived('VirtualMachine', r),
        ...(opts.watchAllVms ? { watchAllVms: true } : {}),
        leftovers: new LeftoverCollector({ node, graceMs, lastActivity: (id) => executor.lastActivity(id), remove: removeLeftover }),
        ...(opts.reportIntervalMs !== undefined ? { intervalMs: opts.reportIntervalMs } : {}),
      });
      executor.on('finished', () => reporter.kick());
      parts.reporter = reporter;
      await reporter.start();

      const lease = new AgentLease({
        api,
        node,
        endpoint,
        capabilities: driver.capabilities(),
        metrics,
        ...(opts.leaseNamespace ? { namespace: opts.leaseNamespace } : {}),
        ...(opts.leaseRenewMs ? { renewMs: opts.leaseRenewMs } : {}),
      });
      parts.lease = lease;
      await lease.start();
    }

    log.info({ endpoint, driver: driver.kind, auth: opts.auth.mode, tls: !!tls }, 'agent started');
    let stopping: Promise<void> | undefined;
    return {
      node,
      endpoint,
      driver,
      executor,
      metrics,
      stop: () => {
        stopping ??= shutdown().then(() => log.info('agent stopped'));
        return stopping;
      },
    };
  } catch (err) {
    await shutdown();
    throw err;
  }
}

function requireKubeconfig(opts: AgentOptions): KubeConfig {
  if (!opts.kubeconfig) throw new Error('tokenreview auth needs a kubeconfig');
  return opts.kubeconfig;
}
