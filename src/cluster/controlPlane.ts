// A local Kubernetes control plane: etcd and kube-apiserver on loopback, with static-token
// identities (admin, controller, agent), RBAC authorization, and a kubeconfig per identity.
// Each instance lives in its own folder and picks its own free ports, so any number can run
// side by side (tests, and a developer's `make cluster`).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { componentLogger } from '../log';
import { controlPlaneBinaries, type ControlPlaneBinaries } from './binaries';
import { newToken, newTokens, serviceAccountKeyPair, tokenAuthFile, type Tokens } from './credentials';
import { httpGet, httpsGet } from './http';
import { IDENTITIES, IDENTITY_NAMES, type IdentityName } from './identities';
import { agentPkiDir, ensureAgentCa } from './agentPki';
import { renderKubeconfig } from './kubeconfig';
import { installVmoveManifests } from './manifests';
import { freePort } from './ports';
import { isRunning, killNow, startDaemon, stopDaemon, type Daemon, type Lifetime } from './processes';
import { instancePaths, readState, readTokens, writeState, type ControlPlaneState, type InstancePaths, type ProcessRecord } from './state';
import { setTimeout as sleep } from 'node:timers/promises';

const log = componentLogger('cluster');

export interface ControlPlaneOptions {
  /** Instance folder: certificates, etcd data, logs, pid files, kubeconfigs. */
  dir: string;
  /** 'parent' (default): dies with this process. 'detached': outlives it (`vmove cluster up`). */
  lifetime?: Lifetime;
  /** Apply crds/*.yaml and wait until they are Established. */
  crds?: boolean;
  /** Apply config/rbac/*.yaml and wait until the bindings are in force. */
  rbac?: boolean;
  crdDir?: string;
  rbacDir?: string;
  readyTimeoutMs?: number;
  /** More kube-apiserver flags (benchmarks: limits sized for a thousand simulated hosts). */
  apiserverArgs?: string[];
  /** Serve real kubelet nodes (kubeletNodes.ts) as well as loopback clients. */
  kubelets?: KubeletServing;
}

/**
 * What a control plane for real kubelets does differently: it listens beyond loopback and
 * advertises an address the nodes reach (the `kubernetes` Service's endpoint), authorizes each
 * node as `system:node:<name>` (Node authorizer + NodeRestriction, as in any cluster), and lets
 * the ServiceAccount admission plugin mount tokens into pods.
 */
export interface KubeletServing {
  advertiseAddress: string;
  nodes: string[];
}

export interface StartTimings {
  binariesMs: number;
  etcdMs: number;
  apiserverMs: number;
  manifestsMs: number;
  totalMs: number;
}

export interface ControlPlane {
  dir: string;
  server: string;
  kubeconfigs: Record<IdentityName, string>;
  tokens: Tokens;
  /** PEM bundle that verifies the API server's serving certificate. */
  caPem: string;
  /** The vmove CA that signs the agents' certificates (agentPki.ts), next to the kubeconfigs. */
  agentPkiDir: string;
  pids: { etcd: number; kubeApiserver: number };
  /** Present when this process started the instance. */
  timings?: StartTimings;
  stop(): Promise<void>;
}

const CLUSTER_NAME = 'vmove-local';
const PORT_ATTEMPTS = 4;

/** Daemons this process started with lifetime 'parent': killed synchronously on exit. */
const ownedDaemons = new Set<ProcessRecord>();
let exitHookInstalled = false;

function own(record: ProcessRecord): void {
  ownedDaemons.add(record);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const d of ownedDaemons) killNow(d.pid, d.executable);
    });
  }
}

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const started = Date.now();
  const lifetime = opts.lifetime ?? 'parent';
  const paths = instancePaths(opts.dir);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;

  const binaries = await controlPlaneBinaries();
  const binariesDone = Date.now();

  const previous = readState(paths);
  if (previous && stateRunning(previous)) {
    throw new Error(`a control plane is already running in ${opts.dir}; stop it first`);
  }
  resetInstanceFolder(paths);
  const tokens = writeCredentials(paths, opts.kubelets?.nodes ?? []);
  const state: ControlPlaneState = { lifetime, ownerPid: process.pid, startedAt: new Date().toISOString() };
  writeState(paths, state);

  const daemons: Daemon[] = [];
  const record = (d: Daemon): ProcessRecord => {
    daemons.push(d);
    const r = { pid: d.pid, executable: d.executable };
    if (lifetime === 'parent') own(r);
    return r;
  };
  // kube-apiserver keeps no state of its own, and a throw-away instance need not wait ~1 s
  // for its graceful shutdown; etcd always gets to close its database cleanly.
  const graceMs = (d: Daemon): number => (d.name === 'etcd' ? 10_000 : lifetime === 'parent' ? 0 : 5_000);
  const stopAll = async (): Promise<void> => {
    for (const d of [...daemons].reverse()) {
      await stopDaemon(d.pid, d.executable, graceMs(d));
      for (const o of ownedDaemons) if (o.pid === d.pid) ownedDaemons.delete(o);
    }
    rmSync(paths.etcdPid, { force: true });
    rmSync(paths.apiserverPid, { force: true });
    rmSync(paths.stateFile, { force: true });
  };

  try {
    const etcd = await startEtcd(paths, binaries, lifetime, readyTimeoutMs);
    state.etcd = record(etcd.daemon);
    state.etcdUrl = etcd.url;
    writeState(paths, state);
    const etcdDone = Date.now();

    const apiserver = await startApiserver(paths, binaries, lifetime, etcd.url, tokens.admin, readyTimeoutMs, opts.apiserverArgs, opts.kubelets);
    state.kubeApiserver = record(apiserver.daemon);
    state.server = apiserver.server;
    writeState(paths, state);
    const apiserverDone = Date.now();

    const caPem = readFileSync(paths.caBundle, 'utf8');
    writeKubeconfigs(paths, apiserver.server, caPem, tokens);
    if (opts.kubelets) writeNodeKubeconfigs(paths, apiserver.server, caPem);
    await ensureAgentCa(agentPkiDir(opts.dir));
    await installVmoveManifests(paths.kubeconfigs, {
      crds: opts.crds ?? false,
      rbac: opts.rbac ?? false,
      ...(opts.crdDir ? { crdDir: opts.crdDir } : {}),
      ...(opts.rbacDir ? { rbacDir: opts.rbacDir } : {}),
    });
    state.readyAt = new Date().toISOString();
    writeState(paths, state);
    const done = Date.now();

    const timings: StartTimings = {
      binariesMs: binariesDone - started,
      etcdMs: etcdDone - binariesDone,
      apiserverMs: apiserverDone - etcdDone,
      manifestsMs: done - apiserverDone,
      totalMs: done - started,
    };
    log.debug({ dir: opts.dir, server: apiserver.server, timings }, 'control plane ready');
    let stopping: Promise<void> | undefined;
    return {
      dir: opts.dir,
      server: apiserver.server,
      kubeconfigs: paths.kubeconfigs,
      tokens,
      caPem,
      agentPkiDir: agentPkiDir(opts.dir),
      pids: { etcd: etcd.daemon.pid, kubeApiserver: apiserver.daemon.pid },
      timings,
      stop: () => (stopping ??= stopAll()),
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** A handle on an instance some other process started (for `vmove cluster status|down`). */
export function attachControlPlane(dir: string): ControlPlane | undefined {
  const paths = instancePaths(dir);
  const state = readState(paths);
  const tokens = readTokens(paths);
  if (!state?.server || !state.etcd || !state.kubeApiserver || !tokens || !existsSync(paths.caBundle)) return undefined;
  const { etcd, kubeApiserver } = state;
  return {
    dir,
    server: state.server,
    kubeconfigs: paths.kubeconfigs,
    tokens,
    caPem: readFileSync(paths.caBundle, 'utf8'),
    agentPkiDir: agentPkiDir(dir),
    pids: { etcd: etcd.pid, kubeApiserver: kubeApiserver.pid },
    stop: () => stopInstance(dir),
  };
}

/** Stops whatever processes an instance folder records (running or half-dead), removing its pid files. */
export async function stopInstance(dir: string): Promise<void> {
  const paths = instancePaths(dir);
  const state = readState(paths);
  if (state?.kubeApiserver) await stopDaemon(state.kubeApiserver.pid, state.kubeApiserver.executable);
  if (state?.etcd) await stopDaemon(state.etcd.pid, state.etcd.executable, 10_000);
  rmSync(paths.etcdPid, { force: true });
  rmSync(paths.apiserverPid, { force: true });
  rmSync(paths.stateFile, { force: true });
}

export interface InstanceHealth {
  state: ControlPlaneState | undefined;
  etcdRunning: boolean;
  apiserverRunning: boolean;
  /** /readyz answered 200 for the admin identity. */
  ready: boolean;
}

export async function probeInstance(dir: string): Promise<InstanceHealth> {
  const paths = instancePaths(dir);
  const state = readState(paths);
  const etcdRunning = !!state?.etcd && isRunning(state.etcd.pid, state.etcd.executable);
  const apiserverRunning = !!state?.kubeApiserver && isRunning(state.kubeApiserver.pid, state.kubeApiserver.executable);
  let ready = false;
  const tokens = readTokens(paths);
  if (state?.server && apiserverRunning && tokens && existsSync(paths.caBundle)) {
    try {
      const caPem = readFileSync(paths.caBundle, 'utf8');
      ready = (await httpsGet(`${state.server}/readyz`, { caPem, token: tokens.admin })).status === 200;
    } catch {
      ready = false;
    }
  }
  return { state, etcdRunning, apiserverRunning, ready };
}

function stateRunning(state: ControlPlaneState): boolean {
  return [state.etcd, state.kubeApiserver].some((p) => p && isRunning(p.pid, p.executable));
}

/** Removes what a previous run of this instance left, keeping the folder itself. */
function resetInstanceFolder(paths: InstancePaths): void {
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  for (const p of [
    paths.stateFile, paths.tokensFile, paths.tokenAuthFile, paths.serviceAccountKey, paths.serviceAccountPub,
    paths.certDir, agentPkiDir(paths.dir), paths.etcdData, paths.etcdLog, paths.etcdPid, paths.apiserverLog, paths.apiserverPid,
    ...Object.values(paths.kubeconfigs),
  ]) {
    rmSync(p, { recursive: true, force: true });
  }
}

function writeCredentials(paths: InstancePaths, nodes: string[]): Tokens {
  const tokens = newTokens();
  const keys = serviceAccountKeyPair();
  const nodeTokens = nodeTokenLines(nodes);
  writeFileSync(paths.tokensFile, JSON.stringify(tokens, null, 2) + '\n', { mode: 0o600 });
  writeFileSync(paths.tokenAuthFile, tokenAuthFile(tokens) + nodeTokens.map((n) => n.line).join(''), { mode: 0o600 });
  writeFileSync(nodeTokensFile(paths), JSON.stringify(Object.fromEntries(nodeTokens.map((n) => [n.node, n.token]))), { mode: 0o600 });
  writeFileSync(paths.serviceAccountKey, keys.privateKey, { mode: 0o600 });
  writeFileSync(paths.serviceAccountPub, keys.publicKey);
  return tokens;
}

function writeKubeconfigs(paths: InstancePaths, server: string, caPem: string, tokens: Tokens): void {
  for (const name of IDENTITY_NAMES) {
    const text = renderKubeconfig({ clusterName: CLUSTER_NAME, server, caPem, user: IDENTITIES[name].username, token: tokens[name] });
    writeFileSync(paths.kubeconfigs[name], text, { mode: 0o600 });
  }
}

const nodeTokensFile = (paths: InstancePaths): string => join(paths.dir, 'node-tokens.json');

/** The kubeconfig a kubelet node (and its kube-proxy) uses: `<dir>/node-<name>.kubeconfig`. */
export const nodeKubeconfig = (dir: string, node: string): string => join(dir, `node-${node}.kubeconfig`);
const KUBE_PROXY = 'kube-proxy';
/** kube-proxy's kubeconfig (user system:kube-proxy): `<dir>/node-kube-proxy.kubeconfig`. */
export const kubeProxyKubeconfig = (dir: string): string => nodeKubeconfig(dir, KUBE_PROXY);

/** Each node's own identity, and kube-proxy's (bound to system:node-proxier by the default policy). */
function nodeTokenLines(nodes: string[]): { node: string; token: string; line: string }[] {
  const users = [...nodes.map((n) => ({ node: n, user: `system:node:${n}`, group: 'system:nodes' })), { node: KUBE_PROXY, user: 'system:kube-proxy', group: '' }];
  return users.map(({ node, user, group }) => {
    const token = newToken();
    return { node, token, line: `${token},${user},vmove-local-${node}${group ? `,"${group}"` : ''}\n` };
  });
}

function writeNodeKubeconfigs(paths: InstancePaths, server: string, caPem: string): void {
  const tokens = JSON.parse(readFileSync(nodeTokensFile(paths), 'utf8')) as Record<string, string>;
  for (const [node, token] of Object.entries(tokens)) {
    const user = node === KUBE_PROXY ? 'system:kube-proxy' : `system:node:${node}`;
    const text = renderKubeconfig({ clusterName: CLUSTER_NAME, server, caPem, user, token });
    writeFileSync(nodeKubeconfig(paths.dir, node), text, { mode: 0o600 });
  }
}

interface Started {
  daemon: Daemon;
}

function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const PORT_TAKEN = /address already in use/;

/**
 * Starts a daemon on a fresh free port and polls until `ready` says yes. Another process may
 * take the port between choosing and binding it; then the daemon exits and we pick another.
 */
async function startOnFreePort<T extends Started>(
  name: string,
  logFile: string,
  timeoutMs: number,
  launch: (port: number) => Promise<T> | T,
  ready: (started: T) => Promise<boolean>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const started = await launch(await freePort());
    let exit: string | undefined;
    void started.daemon.exited.then((code) => (exit = code));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exit !== undefined) break;
      if (await ready(started).catch(() => false)) return started;
      if (Date.now() > deadline) {
        await stopDaemon(started.daemon.pid, started.daemon.executable, 1000);
        throw new Error(`${name} not ready after ${timeoutMs} ms; ${logFile}:\n${logTail(logFile)}`);
      }
      await sleep(50);
    }
    const tail = logTail(logFile);
    if (!PORT_TAKEN.test(tail) || attempt >= PORT_ATTEMPTS) {
      throw new Error(`${name} exited (${exit}) while starting; ${logFile}:\n${tail}`);
    }
    log.debug({ name, attempt }, 'port taken meanwhile; retrying on another');
  }
}

async function startEtcd(paths: InstancePaths, bin: ControlPlaneBinaries, lifetime: Lifetime, timeoutMs: number) {
  return startOnFreePort(
    'etcd',
    paths.etcdLog,
    timeoutMs,
    (port) => {
      const url = `http://127.0.0.1:${port}`;
      const daemon = startDaemon({
        name: 'etcd',
        executable: bin.etcd,
        lifetime,
        logFile: paths.etcdLog,
        pidFile: paths.etcdPid,
        args: [
          '--name=vmove',
          `--data-dir=${paths.etcdData}`,
          `--listen-client-urls=${url}`,
          `--advertise-client-urls=${url}`,
          // A single member never talks to peers: let the kernel pick that port.
          '--listen-peer-urls=http://127.0.0.1:0',
          '--log-level=warn',
          // One member has no peers to lose: elect it at once rather than after the default 1 s.
          '--heartbeat-interval=10',
          '--election-timeout=100',
          // A local, throw-away store: durability across power loss is not worth the fsyncs.
          '--unsafe-no-fsync',
        ],
      });
      return { daemon, url };
    },
    async ({ url }) => (await httpGet(`${url}/health`)).status === 200,
  );
}

async function startApiserver(
  paths: InstancePaths,
  bin: ControlPlaneBinaries,
  lifetime: Lifetime,
  etcdUrl: string,
  adminToken: string,
  timeoutMs: number,
  extraArgs: string[] = [],
  kubelets?: KubeletServing,
) {
  return startOnFreePort(
    'kube-apiserver',
    paths.apiserverLog,
    timeoutMs,
    (port) => {
      // Its self-signed certificate names the advertised address, not loopback, once that is another.
      const server = `https://${kubelets?.advertiseAddress ?? '127.0.0.1'}:${port}`;
      const daemon = startDaemon({
        name: 'kube-apiserver',
        executable: bin.kubeApiserver,
        lifetime,
        logFile: paths.apiserverLog,
        pidFile: paths.apiserverPid,
        args: [
          `--etcd-servers=${etcdUrl}`,
          `--secure-port=${port}`,
          `--bind-address=${kubelets ? '0.0.0.0' : '127.0.0.1'}`,
          `--advertise-address=${kubelets?.advertiseAddress ?? '127.0.0.1'}`,
          `--cert-dir=${paths.certDir}`,
          '--service-cluster-ip-range=10.0.0.0/24',
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${paths.serviceAccountPub}`,
          `--service-account-signing-key-file=${paths.serviceAccountKey}`,
          `--token-auth-file=${paths.tokenAuthFile}`,
          ...(kubelets
            ? ['--authorization-mode=Node,RBAC', '--enable-admission-plugins=NodeRestriction']
            : // No pods run without kubelets: the ServiceAccount plugin would only get in the way.
              ['--authorization-mode=RBAC', '--disable-admission-plugins=ServiceAccount']),
          '--allow-privileged=true',
          ...extraArgs,
        ],
      });
      return { daemon, server };
    },
    async ({ server }) => {
      if (!existsSync(paths.caBundle)) return false;
      const caPem = readFileSync(paths.caBundle, 'utf8');
      return (await httpsGet(`${server}/readyz`, { caPem, token: adminToken })).status === 200;
    },
  );
}
