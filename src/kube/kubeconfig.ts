// Where the API server is and how to prove who we are, read the way kubectl and client-go read it:
// an explicit file, else $KUBECONFIG (first file that names a thing wins), else ~/.kube/config,
// else the Pod's service account (in-cluster). Only what a controller needs is read here — server,
// CA, client certificate, bearer token or token file — because client-node's KubeConfig loads all
// of its generated API models with it (~80 MiB of RSS in a process that uses none of them); a
// kubeconfig whose user runs an exec plugin or an auth provider is left to client-node.
import { existsSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from 'yaml';

/** What a connection to the API server needs. */
export interface Connection {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecureSkipTlsVerify?: boolean;
  tlsServerName?: string;
  /** The bearer token to send now (a token file is read again once a minute: kubelet rotates it). */
  token?: () => string | undefined;
  basic?: { username: string; password: string };
}

/** A user whose credentials come from a program or a plugin: client-node's KubeConfig handles those. */
export interface DelegatedAuth {
  delegate: 'client-node';
  /** The kubeconfig files, as client-node loads them. */
  files: string[];
  reason: string;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TOKEN_FILE_REREAD_MS = 60_000;

interface Named<T> {
  name: string;
  value: T;
  dir: string;
}

interface ClusterEntry {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
}

interface UserEntry {
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  token?: string;
  tokenFile?: string;
  username?: string;
  password?: string;
  exec?: unknown;
  'auth-provider'?: unknown;
}

interface ContextEntry {
  cluster?: string;
  user?: string;
}

interface KubeconfigFile {
  'current-context'?: string;
  clusters?: { name: string; cluster?: ClusterEntry }[];
  users?: { name: string; user?: UserEntry }[];
  contexts?: { name: string; context?: ContextEntry }[];
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  home?: string;
  serviceAccountDir?: string;
}

/** The connection of the kubeconfig at `file` (or found the default way), or which files to give client-node. */
export function loadConnection(file?: string, o: LoadOptions = {}): Connection | DelegatedAuth {
  const env = o.env ?? process.env;
  const files = file ? [file] : defaultFiles(env, o.home ?? os.homedir());
  if (files.length === 0) {
    const inCluster = inClusterConnection(env, o.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
    if (inCluster) return inCluster;
    throw new Error('no kubeconfig: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a Pod with a service account');
  }
  return fromFiles(files);
}

function defaultFiles(env: NodeJS.ProcessEnv, home: string): string[] {
  if (env.KUBECONFIG) return env.KUBECONFIG.split(path.delimiter).filter((f) => f && existsSync(f));
  const file = path.join(home, '.kube', 'config');
  return existsSync(file) ? [file] : [];
}

function fromFiles(files: string[]): Connection | DelegatedAuth {
  let current: string | undefined;
  const clusters = new Map<string, Named<ClusterEntry>>();
  const users = new Map<string, Named<UserEntry>>();
  const contexts = new Map<string, ContextEntry>();
  // As client-go merges: the first file to set a value or name an entry wins.
  for (const f of files) {
    const doc = (parse(readFileSync(f, 'utf8')) ?? {}) as KubeconfigFile;
    const dir = path.dirname(path.resolve(f));
    current ??= doc['current-context'] || undefined;
    for (const c of doc.clusters ?? []) if (!clusters.has(c.name)) clusters.set(c.name, { name: c.name, value: c.cluster ?? {}, dir });
    for (const u of doc.users ?? []) if (!users.has(u.name)) users.set(u.name, { name: u.name, value: u.user ?? {}, dir });
    for (const c of doc.contexts ?? []) if (!contexts.has(c.name)) contexts.set(c.name, c.context ?? {});
  }
  const where = files.join(path.delimiter);
  if (!current) throw new Error(`kubeconfig ${where} has no current-context`);
  const context = contexts.get(current);
  if (!context) throw new Error(`kubeconfig ${where}: current-context "${current}" is not among its contexts`);
  const cluster = context.cluster ? clusters.get(context.cluster) : undefined;
  if (!cluster?.value.server) throw new Error(`kubeconfig ${where}: context "${current}" names no cluster with a server`);
  const user = context.user ? users.get(context.user) : undefined;
  if (user?.value.exec || user?.value['auth-provider']) {
    return { delegate: 'client-node', files, reason: `user "${user.name}" gets credentials from ${user.value.exec ? 'an exec plugin' : 'an auth provider'}` };
  }
  const c = cluster.value;
  const u = user?.value ?? {};
  const tokenFile = u.tokenFile ? path.resolve(user!.dir, u.tokenFile) : undefined;
  return {
    server: new URL(c.server!),
    ...bytes('ca', c['certificate-authority-data'], c['certificate-authority'], cluster.dir),
    ...bytes('cert', u['client-certificate-data'], u['client-certificate'], user?.dir ?? ''),
    ...bytes('key', u['client-key-data'], u['client-key'], user?.dir ?? ''),
    ...(c['insecure-skip-tls-verify'] ? { insecureSkipTlsVerify: true } : {}),
    ...(c['tls-server-name'] ? { tlsServerName: c['tls-server-name'] } : {}),
    ...(u.token ? { token: () => u.token } : tokenFile ? { token: fileToken(tokenFile) } : {}),
    ...(u.username && u.password ? { basic: { username: u.username, password: u.password } } : {}),
  };
}

/** `*-data` is base64 in the file; a path is relative to the kubeconfig that names it. */
function bytes<K extends 'ca' | 'cert' | 'key'>(key: K, data: string | undefined, file: string | undefined, dir: string): Partial<Record<K, Buffer>> {
  if (data) return { [key]: Buffer.from(data, 'base64') } as Record<K, Buffer>;
  if (file) return { [key]: readFileSync(path.resolve(dir, file)) } as Record<K, Buffer>;
  return {};
}

/** A Pod's own API server: the kubernetes Service's address kubelet puts in the environment. */
function inClusterConnection(env: NodeJS.ProcessEnv, dir: string): Connection | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  const tokenFile = path.join(dir, 'token');
  if (!host || !port || !existsSync(tokenFile)) return undefined;
  const caFile = path.join(dir, 'ca.crt');
  return {
    server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
    ...(existsSync(caFile) ? { ca: readFileSync(caFile) } : {}),
    token: fileToken(tokenFile),
  };
}

function fileToken(file: string): () => string | undefined {
  let token: string | undefined;
  let readAt = -Infinity;
  return () => {
    if (Date.now() - readAt >= TOKEN_FILE_REREAD_MS) {
      try {
        token = readFileSync(file, 'utf8').trim();
        readAt = Date.now();
      } catch (err) {
        // Mid-rotation the file can be missing for an instant: keep the token we had.
        if (token === undefined) throw err;
      }
    }
    return token;
  };
}
