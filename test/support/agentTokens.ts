// Tokens for calling agents in tests, all issued by the test cluster's real kube-apiserver:
// TokenRequest for a ServiceAccount with or without the vmove-agent audience, and an expired
// one — the API server will not issue a token shorter than 10 minutes, so that one is a real
// issued token whose times are moved into the past and which is signed again with the cluster's
// own service-account key (what an old, once-valid token looks like to the API server).
import { createSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch } from 'undici';
import { AGENT_AUDIENCE } from '../../src/protocol/host';
import { KubeApi } from '../../src/kube/api';
import { tokenFromTokenRequest } from '../../src/kube/audienceToken';
import type { TestCluster } from './testCluster';

export type ServiceAccountName = 'vmove-controller' | 'vmove-agent';

/** A token for `sa` from TokenRequest, with the agent audience unless `audience` says otherwise (null: the API server's own). */
export async function requestToken(cluster: TestCluster, sa: ServiceAccountName, audience: string | null = AGENT_AUDIENCE): Promise<string> {
  const api = await KubeApi.fromFile(cluster.kubeconfig);
  try {
    if (audience) return await tokenFromTokenRequest(api, { namespace: 'vmove-system', serviceAccount: sa, audience })();
    const res = await api.create<{ status: { token: string } }>('/api/v1/namespaces/vmove-system/serviceaccounts/' + sa + '/token', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 600 },
    });
    return res.status.token;
  } finally {
    api.close();
  }
}

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');

/** `token` with its validity moved `agoSeconds` into the past, signed again with the cluster's key. */
export function expiredCopy(cluster: TestCluster, token: string, agoSeconds = 3600): string {
  const [header, payload] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
  const now = Math.floor(Date.now() / 1000);
  const life = Number(claims.exp) - Number(claims.iat);
  const moved = { ...claims, iat: now - agoSeconds - life, nbf: now - agoSeconds - life, exp: now - agoSeconds };
  const unsigned = `${header}.${b64(moved)}`;
  const key = readFileSync(join(cluster.dir, 'service-account.key'), 'utf8');
  const signature = createSign('RSA-SHA256').update(unsigned).sign(key).toString('base64url');
  return `${unsigned}.${signature}`;
}

/** GET an agent URL over HTTPS trusting the cluster's vmove CA; the status code. */
export async function agentGet(cluster: TestCluster, url: string, token?: string): Promise<{ status: number; headers: Headers }> {
  const ca = readFileSync(join(cluster.agentPkiDir, 'ca-cert.pem'), 'utf8');
  const dispatcher = new Agent({ connect: { ca } });
  try {
    const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, dispatcher });
    await res.arrayBuffer();
    return { status: res.status, headers: res.headers as unknown as Headers };
  } finally {
    await dispatcher.close();
  }
}
