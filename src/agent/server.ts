// The agent's HTTP API (routes in httpApi.ts) over HTTPS (node:https; plain node:http only when
// asked for): JSON in and out, bearer-token auth on /v1, long polls with ?waitMs=, disk streams
// for another agent's cold copy. Order of checks: route and method (404/405), caller (401/403),
// path names and query (400), then the body (415/413/408/400) — nothing reaches the executor
// unless all of it is valid.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { pipeline } from 'node:stream/promises';
import type { Driver } from '../drivers/driver';
import { componentLogger } from '../log';
import { authorize, bearerToken, type AllowedIdentities, type Authenticator, type RouteAccess } from './auth';
import { AgentError, InvalidRequest, badRequest, errorMessage, isTransient, notFound } from './errors';
import type { OperationExecutor } from './operations';
import { AGENT_API, type ErrorBody } from './httpApi';
import type { AgentMetrics } from './metrics';
import { readJsonBody, type BodyLimits } from './requestBody';
import { isSafeName, isValidOpId, pathNameProblem, requestName, validateOperationRequest } from './requestValidation';

const log = componentLogger('agent-http');

/** Bodies are small JSON documents; anything bigger is refused before it is read. */
export const MAX_BODY_BYTES = 1 << 20;
/** A body must arrive within this; the controller sends a few KiB at once. */
export const BODY_TIMEOUT_MS = 10_000;
/** Upper bound of a long poll; callers poll again after it. */
export const MAX_WAIT_MS = 60_000;

export interface AgentServerDeps {
  executor: OperationExecutor;
  driver: Driver;
  authenticator: Authenticator;
  allowed: AllowedIdentities;
  /** Served at /metrics, without a token (as /healthz). */
  metrics?: AgentMetrics;
  /** Defaults: MAX_BODY_BYTES, BODY_TIMEOUT_MS. */
  bodyLimits?: Partial<BodyLimits>;
  /** Serving certificate and key (PEM); plain HTTP without. */
  tls?: { cert: string; key: string };
}

export type AgentHttpServer = Server | HttpsServer;

type Route = {
  method: string;
  pattern: RegExp;
  access: RouteAccess;
  /** Query parameters the route reads; any other is refused. */
  query: readonly string[];
  handle: (req: IncomingMessage, res: ServerResponse, params: string[], url: URL) => Promise<void>;
};

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers });
  res.end(data);
}

function sendError(req: IncomingMessage, res: ServerResponse, status: number, message: string, transient: boolean, headers: Record<string, string> = {}, problems?: ErrorBody['problems']): void {
  const body: ErrorBody = { error: { message, transient }, ...(problems ? { problems } : {}) };
  // A refused request's body is not read to its end (it may be huge or never end): the
  // connection closes after the answer instead of draining it for keep-alive.
  sendJson(res, status, body, req.complete ? headers : { ...headers, connection: 'close' });
}

function waitMsOf(url: URL): number {
  const raw = url.searchParams.get('waitMs');
  if (raw === null) return 0;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidRequest('query', [{ field: 'query.waitMs', message: `must be a number of milliseconds ≥ 0 (got ${JSON.stringify(raw.slice(0, 40))})` }]);
  return Math.min(n, MAX_WAIT_MS);
}

function checkQuery(url: URL, allowed: readonly string[]): void {
  const keys = [...new Set(url.searchParams.keys())];
  const unknown = keys.filter((k) => !allowed.includes(k));
  const repeated = keys.filter((k) => url.searchParams.getAll(k).length > 1);
  const problems = [
    ...unknown.map((k) => ({ field: `query.${k.slice(0, 40)}`, message: allowed.length ? `unknown parameter (this route reads ${allowed.join(', ')})` : 'unknown parameter (this route reads none)' })),
    ...repeated.filter((k) => !unknown.includes(k)).map((k) => ({ field: `query.${k}`, message: 'must be given once' })),
  ];
  if (problems.length) throw new InvalidRequest('query', problems);
}

function pathParams(match: RegExpExecArray, names: string[]): string[] {
  return match.slice(1).map((p, i) => {
    let value: string;
    try {
      value = decodeURIComponent(p);
    } catch {
      throw new InvalidRequest('path', [{ field: names[i] ?? 'path', message: 'must be valid percent-encoding' }]);
    }
    const wrong = pathNameProblem(names[i] ?? 'path', value, names[i] === 'opId' ? isValidOpId : isSafeName);
    if (wrong) throw new InvalidRequest('path', [wrong]);
    return value;
  });
}

export function createAgentServer(deps: AgentServerDeps): AgentHttpServer {
  const { executor, driver } = deps;
  const limits: BodyLimits = { maxBytes: deps.bodyLimits?.maxBytes ?? MAX_BODY_BYTES, timeoutMs: deps.bodyLimits?.timeoutMs ?? BODY_TIMEOUT_MS };
  const routes: (Route & { params: string[] })[] = [
    {
      method: 'GET',
      pattern: new RegExp(`^${AGENT_API}/vms$`),
      params: [],
      query: [],
      access: 'controller',
      handle: async (_req, res) => sendJson(res, 200, await driver.list()),
    },
    {
      method: 'PUT',
      pattern: new RegExp(`^${AGENT_API}/operations/([^/]+)$`),
      params: ['opId'],
      query: ['waitMs'],
      access: 'controller',
      handle: async (req, res, [opId], url) => {
        const waitMs = waitMsOf(url);
        // Checked here, before the executor sees it: a refused body is neither recorded nor run.
        const body = await readJsonBody(req, limits);
        const checked = validateOperationRequest(body);
        if ('problems' in checked) throw new InvalidRequest(requestName(body), checked.problems);
        const status = await executor.submit(opId!, checked.request);
        sendJson(res, 200, waitMs > 0 && status.state === 'Running' ? await executor.waitFor(opId!, waitMs) : status);
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^${AGENT_API}/operations/([^/]+)$`),
      params: ['opId'],
      query: ['waitMs'],
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
      params: ['vmId', 'disk'],
      query: [],
      access: 'diskRead',
      handle: async (req, res, [vmId, disk]) => {
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
      log.debug({ method: req.method, url: req.url?.slice(0, 200), status: res.statusCode, ms: Date.now() - started }, 'request');
    });
    void handle(req, res).catch((err: unknown) => {
      const status = err instanceof AgentError ? err.status : 500;
      if (status >= 500) log.warn({ err: errorMessage(err), url: req.url?.slice(0, 200) }, 'request failed');
      if (res.headersSent) {
        res.destroy(err instanceof Error ? err : undefined);
        return;
      }
      // Driver errors while reading (no such VM, missing disk) are the caller's to see.
      const driverStatus = status === 500 && !isTransient(err) ? 422 : status === 500 ? 503 : status;
      const headers: Record<string, string> = err instanceof MethodNotAllowed ? { allow: err.allow } : {};
      sendError(req, res, driverStatus, errorMessage(err), isTransient(err), headers, err instanceof InvalidRequest ? err.problems : undefined);
    });
  };
  const server: AgentHttpServer = deps.tls ? createHttpsServer({ cert: deps.tls.cert, key: deps.tls.key, minVersion: 'TLSv1.2' }, onRequest) : createHttpServer(onRequest);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Only origin-form targets ("/v1/…"): an absolute or "//host" target must not pick the path.
    if (!req.url?.startsWith('/') || req.url.startsWith('//')) throw badRequest('request target: must be a path starting with a single "/"');
    const url = new URL(`http://agent${req.url}`);
    // The URL parser resolves "." and ".." segments and reads "\\" as "/": a target it rewrites
    // would name another operation or disk than the one written, so only canonical paths are taken.
    const written = req.url.split(/[?#]/, 1)[0];
    if (written !== url.pathname) throw badRequest('request target: the path must be canonical (no "." or ".." segments, no "\\", characters outside a URL path percent-encoded)');
    if (url.pathname === '/healthz') {
      if (req.method !== 'GET') throw new MethodNotAllowed('GET');
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    if (url.pathname === '/metrics' && req.method === 'GET' && deps.metrics) {
      const text = await deps.metrics.scrape(driver);
      res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
      res.end(text);
      return;
    }
    const matching = routes.filter((r) => r.pattern.test(url.pathname));
    const route = matching.find((r) => r.method === req.method);
    if (!route) {
      if (matching.length) throw new MethodNotAllowed(matching.map((r) => r.method).join(', '));
      throw notFound(`no route ${url.pathname.slice(0, 200)}`);
    }
    const token = bearerToken(req.headers.authorization);
    const identity = token ? await deps.authenticator.authenticate(token) : undefined;
    const decision = authorize(identity, route.access, deps.allowed);
    if (decision === 'unauthenticated') {
      deps.metrics?.refused(token ? 'InvalidToken' : 'NoToken');
      sendError(req, res, 401, token ? 'invalid bearer token' : 'bearer token required', false, { 'www-authenticate': 'Bearer realm="vmove-agent"' });
      return;
    }
    if (decision === 'forbidden') {
      deps.metrics?.refused('NotAllowed');
      sendError(req, res, 403, `${identity!.username} may not ${req.method} ${url.pathname.slice(0, 200)}`, false);
      return;
    }
    const params = pathParams(route.pattern.exec(url.pathname)!, route.params);
    checkQuery(url, route.query);
    await route.handle(req, res, params, url);
  }

  // A request (not its long-polled answer) must arrive within a minute; idle keep-alive
  // sockets stay a while so a polling controller reuses them.
  server.requestTimeout = 60_000;
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 30_000;
  return server;
}

class MethodNotAllowed extends AgentError {
  constructor(readonly allow: string) {
    super(`method not allowed here (allowed: ${allow})`, 405, false);
  }
}
