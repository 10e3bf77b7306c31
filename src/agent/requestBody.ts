// Reading a request's JSON body within bounds: the content type, at most `maxBytes` (413 before
// reading when Content-Length says more, and no more read than that otherwise), and all of it
// within `timeoutMs` (408) — a privileged agent must not hold memory or sockets for a peer
// that sends too much or too slowly.
import type { IncomingMessage } from 'node:http';
import { AgentError, badRequest } from './errors';

export interface BodyLimits {
  maxBytes: number;
  timeoutMs: number;
}

export function isJsonContentType(header: string | undefined): boolean {
  if (!header) return false;
  const [type, ...params] = header.split(';').map((s) => s.trim().toLowerCase());
  if (type !== 'application/json') return false;
  return params.every((p) => p === '' || p === 'charset=utf-8' || p === 'charset="utf-8"');
}

export async function readJsonBody(req: IncomingMessage, limits: BodyLimits): Promise<unknown> {
  if (!isJsonContentType(req.headers['content-type'])) {
    throw new AgentError(`content-type: must be application/json (got ${JSON.stringify(req.headers['content-type'] ?? '')})`, 415, false);
  }
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limits.maxBytes) {
    throw new AgentError(`body: must be at most ${limits.maxBytes} bytes (Content-Length ${declared})`, 413, false);
  }
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (err?: AgentError) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (err) {
        // The rest stays unread; the server closes the connection after answering.
        req.pause();
        reject(err);
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limits.maxBytes) return stop(new AgentError(`body: must be at most ${limits.maxBytes} bytes`, 413, false));
      chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => stop(new AgentError(`body: could not be read (${err.message})`, 400, false));
    const onAborted = () => stop(new AgentError('body: the client went away before sending all of it', 400, false));
    const timer = setTimeout(() => stop(new AgentError(`body: must arrive within ${limits.timeoutMs} ms`, 408, false)), limits.timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
  const text = raw.toString('utf8');
  if (text.trim() === '') throw badRequest('body: must be a JSON object (got an empty body)');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`body: must be valid JSON (${(err as Error).message})`);
  }
}
