// A small JSON client for the Kubernetes REST API. Its connection comes from ./kubeconfig (or from
// client-node's KubeConfig for credentials only client-node knows how to get); requests go over one
// keep-alive HTTPS agent. Patches always say their content type (merge patch), and a
// resourceVersion in the body makes a patch conditional.
import * as http from 'node:http';
import * as https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadConnection, type Connection } from './kubeconfig';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly body?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof ApiError && e.status === 404;
export const isConflict = (e: unknown): boolean => e instanceof ApiError && e.status === 409;
export const isAlreadyExists = (e: unknown): boolean => e instanceof ApiError && e.status === 409 && e.reason === 'AlreadyExists';

export const MERGE_PATCH = 'application/merge-patch+json';

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Abort a request (watches). */
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Told the size of the response body (what an agent's VM view counts as received). */
  onBytes?: (bytes: number) => void;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** Counts requests by verb; the benchmark reports writes per move from it. */
export interface RequestStats {
  reads: number;
  writes: number;
  writeLatencyMs: number[];
}

export class KubeApi {
  readonly stats: RequestStats = { reads: 0, writes: 0, writeLatencyMs: [] };
  private recordLatency = false;

  private constructor(
    private readonly server: URL,
    /** The credential headers to send now (a token read from a file changes). */
    private readonly authHeaders: () => Record<string, string>,
    private readonly agent: http.Agent,
  ) {}

  /** One keep-alive agent for every request to `server`, with the connection's TLS settings. */
  private static agentFor(server: URL, tls: https.AgentOptions): http.Agent {
    return server.protocol === 'https:' ? new https.Agent({ keepAlive: true, maxSockets: 64, ...tls }) : new http.Agent({ keepAlive: true, maxSockets: 64 });
  }

  static fromConnection(c: Connection): KubeApi {
    const agent = KubeApi.agentFor(c.server, { ca: c.ca, cert: c.cert, key: c.key, rejectUnauthorized: !c.insecureSkipTlsVerify, ...(c.tlsServerName ? { servername: c.tlsServerName } : {}) });
    const basic = c.basic ? `Basic ${Buffer.from(`${c.basic.username}:${c.basic.password}`).toString('base64')}` : undefined;
    const headers = (): Record<string, string> => {
      const token = c.token?.();
      return token ? { Authorization: `Bearer ${token}` } : basic ? { Authorization: basic } : {};
    };
    return new KubeApi(c.server, headers, agent);
  }

  /** A client from client-node's KubeConfig (the agent and the kubectl plugin load one anyway). */
  static async fromKubeConfig(kc: KubeConfig): Promise<KubeApi> {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const opts: https.RequestOptions = { headers: {} };
    await kc.applyToHTTPSOptions(opts);
    const server = new URL(cluster.server);
    const agent = KubeApi.agentFor(server, { ca: opts.ca, cert: opts.cert, key: opts.key, rejectUnauthorized: opts.rejectUnauthorized });
    const headers = { ...(opts.headers as Record<string, string>) };
    return new KubeApi(server, () => headers, agent);
  }

  /** A client from the kubeconfig at `path`, or found as kubectl finds it (in a Pod: its service account). */
  static async fromFile(path?: string): Promise<KubeApi> {
    const found = loadConnection(path);
    if ('server' in found) return KubeApi.fromConnection(found);
    // An exec plugin or auth provider: client-node loads the same files the same way, and runs it.
    const { KubeConfig } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
    return KubeApi.fromKubeConfig(kc);
  }

  /** Keep write latencies (for benchmarks). */
  measureWrites(on = true): void {
    this.recordLatency = on;
  }

  /** The bearer token this client authenticates with, when it uses one (the controller shows it to agents). */
  bearerToken(): string | undefined {
    const headers = this.authHeaders();
    const auth = headers.Authorization ?? headers.authorization;
    return auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length) : undefined;
  }

  async request<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const isWrite = method !== 'GET';
    const started = performance.now();
    const res = await this.send(method, path, o);
    const text = await readBody(res);
    o.onBytes?.(Buffer.byteLength(text));
    if (isWrite) {
      this.stats.writes++;
      if (this.recordLatency) this.stats.writeLatencyMs.push(performance.now() - started);
    } else this.stats.reads++;
    const parsed = text ? safeJson(text) : undefined;
    if ((res.statusCode ?? 500) >= 300) {
      const status = parsed as { reason?: string; message?: string } | undefined;
      throw new ApiError(res.statusCode ?? 500, status?.reason ?? 'Unknown', `${method} ${path}: ${res.statusCode} ${status?.message ?? text.slice(0, 200)}`, parsed);
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /** A GET whose body is not JSON, as bytes (the API server's /debug/pprof profiles). */
  async getBytes(path: string, query?: RequestOptions['query'], timeoutMs?: number): Promise<Buffer> {
    const res = await this.send('GET', path, { ...(query ? { query } : {}), ...(timeoutMs ? { timeoutMs } : {}) });
    const bytes = await readBytes(res);
    this.stats.reads++;
    if ((res.statusCode ?? 500) >= 300) throw new ApiError(res.statusCode ?? 500, 'Unknown', `GET ${path}: ${res.statusCode} ${bytes.toString('utf8', 0, 200)}`);
    return bytes;
  }

  /** GET that answers undefined for a missing object. */
  async find<T>(path: string, o: Pick<RequestOptions, 'onBytes'> = {}): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', path, o);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  create<T>(collectionPath: string, body: unknown): Promise<T> {
    return this.request<T>('POST', collectionPath, { body });
  }

  replace<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }

  /** JSON merge patch; include metadata.resourceVersion in `patch` to make it conditional. */
  mergePatch<T>(path: string, patch: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body: patch, contentType: MERGE_PATCH });
  }

  delete(path: string): Promise<unknown> {
    return this.request('DELETE', path);
  }

  /**
   * Stream a watch; resolves when the server ends it, rejects on transport errors.
   * ERROR events (e.g. 410 Gone) are passed to `onEvent` like the others; `onBytes` is told
   * the size of each piece of the stream as it arrives.
   */
  async watch<T>(path: string, query: RequestOptions['query'], onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal, onBytes?: (bytes: number) => void): Promise<void> {
    const res = await this.send('GET', path, { query: { ...query, watch: true }, signal });
    if ((res.statusCode ?? 500) >= 300) {
      const text = await readBody(res);
      throw new ApiError(res.statusCode ?? 500, 'WatchFailed', `watch ${path}: ${res.statusCode} ${text.slice(0, 200)}`);
    }
    await new Promise<void>((resolve, reject) => {
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        onBytes?.(Buffer.byteLength(chunk));
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (line) onEvent(JSON.parse(line) as WatchEvent<T>);
        }
      });
      res.on('end', () => resolve());
      res.on('error', (e) => (signal.aborted ? resolve() : reject(e)));
      res.on('close', () => resolve());
    });
  }

  close(): void {
    this.agent.destroy();
  }

  private send(method: string, path: string, o: RequestOptions): Promise<http.IncomingMessage> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const body = o.body === undefined ? undefined : JSON.stringify(o.body);
    const headers: Record<string, string> = {
      ...this.authHeaders(),
      Accept: 'application/json',
      ...(body !== undefined ? { 'Content-Type': o.contentType ?? 'application/json', 'Content-Length': String(Buffer.byteLength(body)) } : {}),
    };
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers, agent: this.agent, signal: o.signal, timeout: o.timeoutMs }, resolve);
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out after ${o.timeoutMs} ms`)));
      if (body !== undefined) req.write(body);
      req.end();
    });
  }
}

function readBytes(res: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
  });
}

const readBody = async (res: http.IncomingMessage): Promise<string> => (await readBytes(res)).toString('utf8');

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text };
  }
}
