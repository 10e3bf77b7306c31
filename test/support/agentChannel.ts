// Raw HTTP(S) to one agent, for tests that send what AgentClient never would: any method,
// path, header and body, bodies written slowly or without end. Keep-alive, bounded sockets.
// The scheme and trust of the channel are decided here only: an https:// endpoint with the
// vmove CA (`ca`) is all a test needs once agents serve TLS.
import http, { type ClientRequest, type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';

export interface RawRequest {
  method: string;
  /** Path and query, already encoded (sent as given). */
  path: string;
  headers?: Record<string, string>;
  /** The whole body at once… */
  body?: string | Buffer;
  /** …or written by the test (slowly, too much); resolve when done writing, and stop once `answered()`. */
  write?: (req: ClientRequest, answered: () => boolean) => Promise<void>;
  /** Bearer token; `null` sends none; default the channel's. */
  token?: string | null;
}

export type RawResponse =
  | { answered: true; status: number; headers: IncomingHttpHeaders; text: string; json?: unknown }
  | { answered: false; status: 0; error: string };

/** Until `req` can take more (or closed): for tests that write big bodies themselves. */
export function drained(req: ClientRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    req.on('drain', done);
    req.on('close', done);
  });
}

export interface AgentChannel {
  readonly base: URL;
  request(r: RawRequest): Promise<RawResponse>;
  close(): void;
}

export interface ChannelOptions {
  token: string;
  /** At most this many connections at once (requests beyond queue up). */
  maxSockets?: number;
  /** PEM of the CA that signs agent certificates (https endpoints). */
  ca?: string;
  /** No answer after this long is an error (ms). */
  timeoutMs?: number;
}

export function agentChannel(endpoint: string, opts: ChannelOptions): AgentChannel {
  const base = new URL(endpoint);
  const tls = base.protocol === 'https:';
  const agentOpts = { keepAlive: true, maxSockets: opts.maxSockets ?? 8 };
  const agent = tls ? new https.Agent({ ...agentOpts, ...(opts.ca ? { ca: opts.ca } : {}) }) : new http.Agent(agentOpts);
  const send = tls ? https.request : http.request;

  const request = (r: RawRequest): Promise<RawResponse> =>
    new Promise((resolve) => {
      let answered = false;
      let settled = false;
      const finish = (res: RawResponse) => {
        if (settled) return;
        settled = true;
        resolve(res);
      };
      const token = r.token === undefined ? opts.token : r.token;
      let req: ClientRequest;
      try {
        req = send({
        agent,
        protocol: base.protocol,
        hostname: base.hostname.replace(/^\[|\]$/g, ''),
        port: base.port,
        method: r.method,
        path: r.path,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(r.body !== undefined ? { 'content-length': String(Buffer.byteLength(r.body)) } : {}), ...r.headers },
        });
      } catch (err) {
        // The client refused to send it (a path Node will not put on the wire): the test's bug.
        finish({ answered: false, status: 0, error: `not sent: ${(err as Error).message}` });
        return;
      }
      req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error('no answer in time')));
      req.on('response', (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => finish({ answered: false, status: 0, error: `response: ${err.message}` }));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          finish({ answered: true, status: res.statusCode ?? 0, headers: res.headers, text, ...(json !== undefined ? { json } : {}) });
        });
      });
      // Errors after an answer (the agent closed a connection whose body it refused) are expected.
      req.on('error', (err) => {
        if (!answered) finish({ answered: false, status: 0, error: err.message });
      });
      if (r.write) {
        r.write(req, () => answered).then(
          () => {
            if (!req.destroyed) req.end();
          },
          (err: unknown) => req.destroy(err as Error),
        );
      } else {
        req.end(r.body);
      }
    });

  return { base, request, close: () => agent.destroy() };
}
