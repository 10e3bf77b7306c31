// Who may call the agent. Every /v1 call carries a bearer token; an authenticator turns it into
// an identity (TokenReview against the API server, or a shared secret for local development),
// and `authorize` decides: the controller identity may call everything, the agent identity
// (another host's agent pulling disks for a cold move) only `GET /v1/disks/…`.
// Tokens are audience-bound: a TokenReview asks for AGENT_AUDIENCE and a token issued for
// anything else (the controller's ordinary API token, if it leaked) is no identity here.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { V1TokenReview } from '@kubernetes/client-node';
import type { KubeApi } from '../kube/api';
import { componentLogger } from '../log';
import { AGENT_AUDIENCE } from '../protocol/host';
import { AgentError, errorMessage } from './errors';

const log = componentLogger('agent-auth');

export type AuthMode = 'tokenreview' | 'shared-secret';

export { AGENT_AUDIENCE };

export interface Identity {
  username: string;
  groups?: string[];
}

export interface AllowedIdentities {
  /** May call every route. */
  controller: string[];
  /** May only read disks. */
  agent: string[];
}

export const DEFAULT_ALLOWED: AllowedIdentities = {
  controller: ['system:serviceaccount:vmove-system:vmove-controller'],
  agent: ['system:serviceaccount:vmove-system:vmove-agent'],
};

/** The identity a shared secret stands for: the controller's (agents use the same secret). */
export const SHARED_SECRET_USERNAME = 'vmove:shared-secret';

/** What a route needs. */
export type RouteAccess = 'controller' | 'diskRead';

export type AuthDecision = 'allow' | 'unauthenticated' | 'forbidden';

/** Pure decision: 401 without a valid identity, 403 when the identity may not use the route. */
export function authorize(identity: Identity | undefined, access: RouteAccess, allowed: AllowedIdentities): AuthDecision {
  if (!identity) return 'unauthenticated';
  if (allowed.controller.includes(identity.username)) return 'allow';
  if (access === 'diskRead' && allowed.agent.includes(identity.username)) return 'allow';
  return 'forbidden';
}

/** The token of an `Authorization: Bearer …` header. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

export interface Authenticator {
  /** The caller's identity, or undefined for an invalid token. Throws (503) when it cannot tell. */
  authenticate(token: string): Promise<Identity | undefined>;
}

export class SharedSecretAuthenticator implements Authenticator {
  private readonly digest: Buffer;

  constructor(secret: string) {
    if (secret.length < 16) throw new Error('shared secret must have at least 16 characters');
    this.digest = sha256(secret);
  }

  async authenticate(token: string): Promise<Identity | undefined> {
    // Compare digests: equal length, constant time.
    return timingSafeEqual(sha256(token), this.digest) ? { username: SHARED_SECRET_USERNAME } : undefined;
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

interface CacheEntry {
  identity: Identity;
  expiresAt: number;
}

/**
 * Asks the API server who a token belongs to (TokenReview, with the agent's own credentials;
 * needs `create` on `tokenreviews`). Positive answers are cached briefly so a controller
 * polling many operations costs one review per TTL; negative answers are not, so a token that
 * just became valid works at once. Concurrent reviews of one token share one request.
 */
export class TokenReviewAuthenticator implements Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<Identity | undefined>>();

  constructor(
    /** The agent's keep-alive client (a review per new caller token must not cost a TLS handshake). */
    private readonly api: () => Promise<KubeApi>,
    /** audiences: what a token must be issued for (default [AGENT_AUDIENCE]). */
    private readonly opts: { cacheTtlMs?: number; maxCacheEntries?: number; audiences?: string[] } = {},
  ) {}

  async authenticate(token: string): Promise<Identity | undefined> {
    const key = sha256(token).toString('hex');
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > Date.now()) return hit.identity;
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const review = this.review(token, key).finally(() => this.inflight.delete(key));
    this.inflight.set(key, review);
    return review;
  }

  private get audiences(): string[] {
    return this.opts.audiences ?? [AGENT_AUDIENCE];
  }

  private async review(token: string, key: string): Promise<Identity | undefined> {
    let result;
    try {
      const api = await this.api();
      result = await api.create<V1TokenReview>('/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences: this.audiences },
      });
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'TokenReview failed');
      throw new AgentError(`cannot check the caller's token: ${errorMessage(err)}`, 503, true);
    }
    const user = result.status?.user;
    // Refused: not authenticated, or (when audiences were asked for) not for one of them.
    if (!result.status?.authenticated || !user?.username) return undefined;
    if (!this.audiences.some((a) => result.status?.audiences?.includes(a))) return undefined;
    const identity: Identity = { username: user.username, ...(user.groups ? { groups: user.groups } : {}) };
    this.remember(key, identity);
    return identity;
  }

  private remember(key: string, identity: Identity): void {
    const max = this.opts.maxCacheEntries ?? 1000;
    if (this.cache.size >= max) {
      const now = Date.now();
      for (const [k, e] of this.cache) if (e.expiresAt <= now) this.cache.delete(k);
      // Still full: drop the oldest entry (Map keeps insertion order).
      if (this.cache.size >= max) this.cache.delete(this.cache.keys().next().value!);
    }
    this.cache.set(key, { identity, expiresAt: Date.now() + (this.opts.cacheTtlMs ?? 10_000) });
  }
}
