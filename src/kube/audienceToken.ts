// Short-lived, audience-bound bearer tokens for calls to agents. In a cluster the kubelet
// writes one into a projected ServiceAccount token volume and rotates it (fromFile re-reads the
// file when it changed); on the local control plane the caller asks the API server's
// TokenRequest API for its own ServiceAccount and asks again before the token runs out.
import { readFileSync, statSync } from 'node:fs';
import { componentLogger } from '../log';
import type { KubeApi } from './api';
import { corePath } from './paths';

const log = componentLogger('audience-token');

export type TokenSource = () => Promise<string>;

/** The token in `path`, read again whenever the file changes (kubelet's atomic symlink swap included). */
export function tokenFromFile(path: string): TokenSource {
  let seen: { mtimeMs: number; ino: number; token: string } | undefined;
  return async () => {
    const st = statSync(path);
    if (!seen || seen.mtimeMs !== st.mtimeMs || seen.ino !== st.ino) seen = { mtimeMs: st.mtimeMs, ino: st.ino, token: readFileSync(path, 'utf8').trim() };
    return seen.token;
  };
}

interface TokenRequestStatus {
  status?: { token?: string; expirationTimestamp?: string };
}

export interface TokenRequestOptions {
  namespace: string;
  serviceAccount: string;
  audience: string;
  /** Asked-for lifetime (the API server's minimum is 600 s). Default 3600. */
  expirationSeconds?: number;
}

/** When a token issued at `issuedAt` and expiring at `expiresAt` should be replaced: after 80% of its life. */
export function refreshAt(issuedAt: number, expiresAt: number): number {
  return issuedAt + (expiresAt - issuedAt) * 0.8;
}

/**
 * A token for `serviceAccount` with `audience`, from the TokenRequest API (`create` on
 * serviceaccounts/token). Renewed once 80% of its life has passed; concurrent callers share one
 * request; when a renewal fails the old token serves while it is valid.
 */
export function tokenFromTokenRequest(api: KubeApi, o: TokenRequestOptions): TokenSource {
  let current: { token: string; renewAt: number; expiresAt: number } | undefined;
  let pending: Promise<string> | undefined;
  const issue = async (): Promise<string> => {
    const issuedAt = Date.now();
    const res = await api.create<TokenRequestStatus>(`${corePath('serviceaccounts', { namespace: o.namespace, name: o.serviceAccount })}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: [o.audience], expirationSeconds: o.expirationSeconds ?? 3600 },
    });
    const token = res.status?.token;
    const expiresAt = Date.parse(res.status?.expirationTimestamp ?? '');
    if (!token || !Number.isFinite(expiresAt)) throw new Error(`TokenRequest for ${o.namespace}/${o.serviceAccount} answered no token`);
    current = { token, expiresAt, renewAt: refreshAt(issuedAt, expiresAt) };
    log.debug({ serviceAccount: o.serviceAccount, audience: o.audience, expiresAt: new Date(expiresAt).toISOString() }, 'token issued');
    return token;
  };
  return async () => {
    const now = Date.now();
    if (current && now < current.renewAt) return current.token;
    pending ??= issue().finally(() => (pending = undefined));
    try {
      return await pending;
    } catch (err) {
      if (current && now < current.expiresAt) {
        log.warn({ err: (err as Error).message }, 'token renewal failed; the current token serves until it expires');
        return current.token;
      }
      throw err;
    }
  };
}

/** `NAMESPACE/NAME` of a ServiceAccount. */
export function parseServiceAccount(raw: string): { namespace: string; name: string } {
  const m = /^([a-z0-9-]+)\/([a-z0-9.-]+)$/.exec(raw);
  if (!m) throw new Error(`expected NAMESPACE/NAME of a ServiceAccount, got "${raw}"`);
  return { namespace: m[1]!, name: m[2]! };
}
