// AgentClient: how the controller (and a target agent pulling disks) talks to an agent.
// It tells "the agent could not be reached or answered 5xx" (AgentUnreachableError, always
// transient) apart from "the agent answered and said no" (AgentRequestError: 4xx, permanent
// except 429) — and an operation that ran and failed comes back as a normal OperationStatus.
// Over https it trusts only the vmove CA, and when it knows which node it calls, only a
// certificate that names that node: one host cannot answer for another (AgentUntrustedError).
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { Agent as Dispatcher, fetch, type Response } from 'undici';
import type { DiskReader } from '../drivers/driver';
import type { VmInfo } from '../protocol/vm';
import { errorMessage } from './errors';
import type { OperationRequest, OperationStatus } from '../protocol/operations';
import { AGENT_API, type ErrorBody } from './httpApi';

export type TokenProvider = () => string | Promise<string>;

/** An agent to call: where it listens, and (when known) the node its certificate must name. */
export type AgentTarget = string | { endpoint: string; node?: string };

export interface AgentClientOptions {
  token: TokenProvider;
  /** PEM of the vmove CA the agents' certificates must chain to (re-read when it changes); system CAs when absent. */
  ca?: () => string;
  /** Time allowed for an answer, on top of any long-poll wait (default 10 s). */
  timeoutMs?: number;
}

/** The agent did not answer usefully: connection refused/reset, timeout, 5xx. Try again later. */
export class AgentUnreachableError extends Error {
  override readonly name: string = 'AgentUnreachableError';
  readonly transient = true;
  constructor(
    readonly endpoint: string,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The agent's certificate is not one to trust for this call: not from the vmove CA, or it names
 * another node than the one meant. Transient for the caller (a fixed certificate heals it), but
 * worth telling the user: nothing was sent to that agent.
 */
export class AgentUntrustedError extends AgentUnreachableError {
  override readonly name = 'AgentUntrustedError';
  readonly untrusted = true;
}

/** The agent answered and refused the request (4xx): bad request, auth, conflict. */
export class AgentRequestError extends Error {
  override readonly name = 'AgentRequestError';
  constructor(
    readonly endpoint: string,
    readonly status: number,
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
  }
}

export class AgentClient {
  private readonly timeoutMs: number;

  constructor(private readonly opts: AgentClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** Start (or re-send) an operation; with waitMs, the agent answers once it finished or the wait ended. */
  async putOperation(target: AgentTarget, opId: string, req: OperationRequest, opts: { waitMs?: number } = {}): Promise<OperationStatus> {
    const path = `/operations/${encodeURIComponent(opId)}${waitQuery(opts.waitMs)}`;
    return (await this.callJson<OperationStatus>(target, 'PUT', path, req, opts.waitMs))!;
  }

  /** The operation's status; undefined when the agent does not know it. */
  async getOperation(target: AgentTarget, opId: string, opts: { waitMs?: number } = {}): Promise<OperationStatus | undefined> {
    const path = `/operations/${encodeURIComponent(opId)}${waitQuery(opts.waitMs)}`;
    return this.callJson<OperationStatus>(target, 'GET', path, undefined, opts.waitMs, true);
  }

  async listVms(target: AgentTarget): Promise<VmInfo[]> {
    return (await this.callJson<VmInfo[]>(target, 'GET', '/vms'))!;
  }

  /** Stream a stopped VM's disk from another agent. The timeout covers the response headers only. */
  async readDisk(target: AgentTarget, vmId: string, disk: string, signal?: AbortSignal): Promise<DiskReader> {
    const path = `/disks/${encodeURIComponent(vmId)}/${encodeURIComponent(disk)}`;
    const endpoint = endpointOf(target);
    const { res, done } = await this.request(target, 'GET', path, undefined, 0, signal);
    done();
    await this.check(endpoint, 'GET', path, res);
    const size = Number(res.headers.get('content-length'));
    if (!res.body || !Number.isFinite(size)) throw new AgentUnreachableError(endpoint, `disk ${vmId}/${disk}: answer without a length`);
    return { sizeBytes: size, stream: Readable.fromWeb(res.body as WebReadableStream<Uint8Array>) };
  }

  private async callJson<T>(target: AgentTarget, method: string, path: string, body?: unknown, waitMs = 0, notFoundIsUndefined = false): Promise<T | undefined> {
    const endpoint = endpointOf(target);
    const { res, done } = await this.request(target, method, path, body, waitMs);
    try {
      if (notFoundIsUndefined && res.status === 404) {
        await res.body?.cancel();
        return undefined;
      }
      await this.check(endpoint, method, path, res);
      return (await res.json()) as T;
    } catch (err) {
      if (err instanceof AgentRequestError || err instanceof AgentUnreachableError) throw err;
      throw new AgentUnreachableError(endpoint, `${method} ${path}: ${errorMessage(err)}`, undefined, { cause: err });
    } finally {
      done();
    }
  }

  /** fetch with a deadline of timeoutMs + waitMs; `done` ends the deadline. */
  private async request(
    target: AgentTarget,
    method: string,
    path: string,
    body: unknown,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<{ res: Response; done: () => void }> {
    const endpoint = endpointOf(target);
    const url = `${endpoint.replace(/\/+$/, '')}${AGENT_API}${path}`;
    const deadline = this.timeoutMs + waitMs;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), deadline);
    const signals = signal ? AbortSignal.any([timeout.signal, signal]) : timeout.signal;
    try {
      const res = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${await this.opts.token()}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: signals,
        dispatcher: this.dispatcherFor(target),
      });
      // After `done`, a body still being read (a disk stream) is no longer under the deadline.
      return { res, done: () => clearTimeout(timer) };
    } catch (err) {
      clearTimeout(timer);
      if (signal?.aborted) throw err;
      const untrusted = tlsRefusal(err);
      if (untrusted) throw new AgentUntrustedError(endpoint, `${method} ${url}: ${untrusted}`, undefined, { cause: err });
      const why = timeout.signal.aborted ? `no answer within ${deadline} ms` : errorMessage(err);
      throw new AgentUnreachableError(endpoint, `${method} ${url}: ${why}`, undefined, { cause: err });
    }
  }

  private readonly dispatchers = new Map<string, { ca: string; dispatcher: Dispatcher }>();

  /** One connection pool per node (its certificate check differs), renewed when the CA changes. */
  private dispatcherFor(target: AgentTarget): Dispatcher | undefined {
    const endpoint = endpointOf(target);
    if (!endpoint.startsWith('https:')) return undefined;
    const node = typeof target === 'string' ? undefined : target.node;
    const ca = this.opts.ca?.();
    const key = node ?? '';
    const known = this.dispatchers.get(key);
    if (known && known.ca === (ca ?? '')) return known.dispatcher;
    void known?.dispatcher.close();
    const dispatcher = new Dispatcher({
      connect: {
        ...(ca ? { ca } : {}),
        // The node name, not the URL's host: every agent of one machine listens on 127.0.0.1.
        ...(node ? { checkServerIdentity: (_host: string, cert: PeerCertificate) => nodeIdentityError(node, cert) } : {}),
      },
    });
    this.dispatchers.set(key, { ca: ca ?? '', dispatcher });
    return dispatcher;
  }

  /** Close the connection pools. */
  async close(): Promise<void> {
    await Promise.all([...this.dispatchers.values()].map((d) => d.dispatcher.close()));
    this.dispatchers.clear();
  }

  private async check(endpoint: string, method: string, path: string, res: Response): Promise<void> {
    if (res.ok) return;
    const detail = await res
      .json()
      .then((j: unknown) => (j as Partial<ErrorBody> | null)?.error?.message)
      .catch(() => undefined);
    const message = `${method} ${endpoint}${AGENT_API}${path}: ${res.status}${detail ? ` ${detail}` : ''}`;
    if (res.status >= 500) throw new AgentUnreachableError(endpoint, message, res.status);
    throw new AgentRequestError(endpoint, res.status, message, res.status === 429);
  }
}

export function endpointOf(target: AgentTarget): string {
  return typeof target === 'string' ? target : target.endpoint;
}

/** Why `cert` does not stand for `node`, or undefined when it names it. */
export function nodeIdentityError(node: string, cert: PeerCertificate): Error | undefined {
  const err = checkServerIdentity(node, cert);
  if (!err) return undefined;
  return Object.assign(new Error(`the agent's certificate does not name node ${node} (it names ${cert.subjectaltname ?? cert.subject?.CN ?? 'nothing'})`), { code: 'VMOVE_NODE_IDENTITY' });
}

const TLS_TRUST_CODES = new Set([
  'VMOVE_NODE_IDENTITY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
]);

/** The certificate-trust reason somewhere in a fetch error's causes, if that is why it failed. */
function tlsRefusal(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TLS_TRUST_CODES.has(code)) return `not trusted: ${(e as Error).message}`;
  }
  return undefined;
}

function waitQuery(waitMs: number | undefined): string {
  return waitMs && waitMs > 0 ? `?waitMs=${Math.round(waitMs)}` : '';
}
