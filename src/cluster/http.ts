// Minimal HTTPS GET against the local API server, trusting its generated CA bundle.
import { request } from 'node:https';

export interface HttpResult {
  status: number;
  body: string;
}

export function httpsGet(url: string, opts: { caPem: string; token?: string; timeoutMs?: number }): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'GET',
        ca: opts.caPem,
        headers: opts.token ? { Authorization: `Bearer ${opts.token}` } : {},
        timeout: opts.timeoutMs ?? 2000,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export function httpGet(url: string, timeoutMs = 2000): Promise<HttpResult> {
  return fetch(url, { signal: AbortSignal.timeout(timeoutMs) }).then(async (res) => ({
    status: res.status,
    body: await res.text(),
  }));
}
