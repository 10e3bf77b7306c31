// The agent's HTTP API (routes in httpApi.ts) over HTTPS (node:https; plain node:http only when
// asked for): JSON in and out, bearer-token auth on /v1, long polls with ?waitMs=, disk streams
// for another agent's cold copy.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { pipeline } from 'node:stream/promises';
import type { Driver } from '../drivers/driver';
import { componentLogger } from '../log';
import { authorize, bearerToken, type AllowedIdentities, type Authenticator, type RouteAccess } from './auth';
import { AgentError, badRequest, errorMessage, isTransient, notFound } from './errors';
import type { OperationExecutor } from './operations';
import { AGENT_API, type ErrorBody } from './httpApi';
import { isSafeName } from './requestValidation';

const log = componentLogger('agent-http');

const MAX_BODY_BYTES = 1 << 20;
/** Upper bound of a long poll; callers poll again after it. */
export const MAX_WAIT_MS = 60_000;

export interface AgentServerDeps {
  executor: OperationExecutor;
  driver: Driver;
  authenticator: Authenticator;
  allowed: AllowedIdentities;
  /** Serving certificate and key (PEM); plain HTTP without. */
  tls?: { cert: string; key: string };
}

export type AgentHttpServer = Server | HttpsServer;

type Route = {
  method: string;
  pattern: RegExp;
  access: RouteAccess;
  handle: (req: IncomingMessage, res: ServerResponse, params: string[], url: URL) => Promise<void>;
};

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers });
  res.end(data);
}

function sendError(res: ServerResponse, status: number, message: string, transient: boolean, headers: Record<string, string> = {}): void {
  const body: ErrorBody = { error: { message, transient } };
  sendJson(res, status, body, headers);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new AgentError('request body too large', 413, false);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw badRequest('request body is not valid JSON');
  }
}

function waitMsOf(url: URL): number {
  const raw = url.searchParams.get('waitMs');
  if (raw === null) return 0;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw badRequest('waitMs: a number of milliseconds ≥ 0');
  return Math.min(n, MAX_WAIT_MS);
}

export function createAgentServer(deps: AgentServerDeps): AgentHttpServer {
  const { executor, driver } = deps;
  const routes: Route[] = [
    {
      method: 'GET',
      pattern: new RegExp(`^${AGENT_API}/vms$`),
      access: 'controller',
      handle: async (_req, res) => sendJson(res, 200, await driver.list()),
    },
    {
      method: 'PUT',
      pattern: new RegExp(`^${AGENT_API}/operations/([^/]+)$`),
      access: 'controller',
      handle: async (req, res, [opId], url) => {
        const waitMs = waitMsOf(url);
        const status = await executor.submit(opId!, await readJson(req));
        sendJson(res, 200, waitMs > 0 && status.state === 'Running' ? await executor.waitFor(opId!, waitMs) : status);
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^${AGENT_API}/operations/([^/]+)$`),
      access: 'controller',
      handle: async (_req, res, [opId], url) => {
        const status = await executor.waitFor(opId!, waitMsOf(url));
        if (!status) throw notFound(`no operation ${opId}`);
        sendJson(res, 200, status);
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^${AGENT_API}/disks/([^/]+)/([^/]+)$`),
      access: 'diskRead',
      handle: async (req, res, [vmId, disk]) => {
        if (!isSafeName(vmId!) || !isSafeName(disk!)) throw badRequest('invalid VM or disk name');
        const vm = (await driver.list()).find((v) => v.id === vmId);
        if (!vm) throw notFound(`no VM ${vmId} here`);
        // Copying the disk of a guest that still writes to it would copy a torn image.
        if (vm.state !== 'Stopped' && vm.state !== 'Migrated' && vm.state !== 'Crashed') {
          throw new AgentError(`VM ${vmId} is ${vm.state}: stop it before copying its disks`, 409, false);
        }
        const reader = await driver.readDisk(vmId!, disk!);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': reader.sizeBytes });
        req.on('close', () => reader.stream.destroy());
        await pipeline(reader.stream, res);
      },
    },
  ];

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const started = Date.now();
    res.on('finish', () => {
      log.debug({ method: req.method, url: req.url, status: res.statusCode, ms: Date.now() - started }, 'request');
    });
    void handle(req, res).catch((err: unknown) => {
      const status = err instanceof AgentError ? err.status : 500;
      if (status >= 500) log.warn({ err: errorMessage(err), url: req.url }, 'request failed');
      if (res.headersSent) {
        res.destroy(err instanceof Error ? err : undefined);
        return;
      }
      // Driver errors while reading (no such VM, missing disk) are the caller's to see.
      const driverStatus = status === 500 && !isTransient(err) ? 422 : status === 500 ? 503 : status;
      sendError(res, driverStatus, errorMessage(err), isTransient(err));
    });
  };
  const server: AgentHttpServer = deps.tls ? createHttpsServer({ cert: deps.tls.cert, key: deps.tls.key, minVersion: 'TLSv1.2' }, onRequest) : createHttpServer(onRequest);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (url.pathname === '/healthz' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    const route = routes.find((r) => r.pattern.test(url.pathname) && r.method === req.method);
    if (!route) {
      const pathKnown = routes.some((r) => r.pattern.test(url.pathname));
      throw new AgentError(pathKnown ? `${req.method} not allowed here` : `no route ${url.pathname}`, pathKnown ? 405 : 404, false);
    }
    const token = bearerToken(req.headers.authorization);
    const identity = token ? await deps.authenticator.authenticate(token) : undefined;
    const decision = authorize(identity, route.access, deps.allowed);
    if (decision === 'unauthenticated') {
      req.resume();
      sendError(res, 401, token ? 'invalid bearer token' : 'bearer token required', false, { 'www-authenticate': 'Bearer realm="vmove-agent"' });
      return;
    }
    if (decision === 'forbidden') {
      req.resume();
      sendError(res, 403, `${identity!.username} may not ${req.method} ${url.pathname}`, false);
      return;
    }
    const params = route.pattern.exec(url.pathname)!.slice(1).map((p) => decodeURIComponent(p));
    await route.handle(req, res, params, url);
  }

  // A request (not its long-polled answer) must arrive within a minute; idle keep-alive
  // sockets stay a while so a polling controller reuses them.
  server.requestTimeout = 60_000;
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 30_000;
  return server;
}
