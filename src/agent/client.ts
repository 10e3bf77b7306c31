// AgentClient: how the controller (and a target agent pulling disks) talks to an agent.
// It tells "the agent could not be reached or answered 5xx" (AgentUnreachableError, always
// transient) apart from "the agent answered and said no" (AgentRequestError: 4xx, permanent
// except 429) — and an operation that ran and failed comes back as a normal OperationStatus.
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { DiskReader } from '../drivers/driver';
import type { VmInfo } from '../protocol/vm';
import { errorMessage } from './errors';
import type { OperationRequest, OperationStatus } from '../protocol/operations';
import { AGENT_API, type ErrorBody } from './httpApi';

export type TokenProvider = () => string | Promise<string>;

export interface AgentClientOptions {
  token: TokenProvider;
  /** Time allowed for an answer, on top of any long-poll wait (default 10 s). */
  timeoutMs?: number;
}

/** The agent did not answer usefully: connection refused/reset, timeout, 5xx. Try again later. */
export class AgentUnreachableError extends Error {
  override readonly name = 'AgentUnreachableError';
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
  async putOperation(endpoint: string, opId: string, req: OperationRequest, opts: { waitMs?: number } = {}): Promise<OperationStatus> {
    const path = `/operations/${encodeURIComponent(opId)}${waitQuery(opts.waitMs)}`;
    return (await this.callJson<OperationStatus>(endpoint, 'PUT', path, req, opts.waitMs))!;
  }

  /** The operation's status; undefined when the agent does not know it. */
  async getOperation(endpoint: string, opId: string, opts: { waitMs?: number } = {}): Promise<OperationStatus | undefined> {
    const path = `/operations/${encodeURIComponent(opId)}${waitQuery(opts.waitMs)}`;
    return this.callJson<OperationStatus>(endpoint, 'GET', path, undefined, opts.waitMs, true);
  }

  async listVms(endpoint: string): Promise<VmInfo[]> {
    return (await this.callJson<VmInfo[]>(endpoint, 'GET', '/vms'))!;
  }

  /** Stream a stopped VM's disk from another agent. The timeout covers the response headers only. */
  async readDisk(endpoint: string, vmId: string, disk: string, signal?: AbortSignal): Promise<DiskReader> {
    const path = `/disks/${encodeURIComponent(vmId)}/${encodeURIComponent(disk)}`;
    const { res, done } = await this.request(endpoint, 'GET', path, undefined, 0, signal);
    done();
    await this.check(endpoint, 'GET', path, res);
    const size = Number(res.headers.get('content-length'));
    if (!res.body || !Number.isFinite(size)) throw new AgentUnreachableError(endpoint, `disk ${vmId}/${disk}: answer without a length`);
    return { sizeBytes: size, stream: Readable.fromWeb(res.body as WebReadableStream<Uint8Array>) };
  }

  private async callJson<T>(endpoint: string, method: string, path: string, body?: unknown, waitMs = 0, notFoundIsUndefined = false): Promise<T | undefined> {
    const { res, done } = await this.request(endpoint, method, path, body, waitMs);
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
    endpoint: string,
    method: string,
    path: string,
    body: unknown,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<{ res: Response; done: () => void }> {
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
      });
      // After `done`, a body still being read (a disk stream) is no longer under the deadline.
      return { res, done: () => clearTimeout(timer) };
    } catch (err) {
      clearTimeout(timer);
      if (signal?.aborted) throw err;
      const why = timeout.signal.aborted ? `no answer within ${deadline} ms` : errorMessage(err);
      throw new AgentUnreachableError(endpoint, `${method} ${url}: ${why}`, undefined, { cause: err });
    }
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

function waitQuery(waitMs: number | undefined): string {
  return waitMs && waitMs > 0 ? `?waitMs=${Math.round(waitMs)}` : '';
}
