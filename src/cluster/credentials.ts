// Secrets of one local control plane: bearer tokens for its identities and the
// service-account signing key pair. Generated once per instance folder.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { IDENTITIES, IDENTITY_NAMES, type IdentityName } from './identities';

export type Tokens = Record<IdentityName, string>;

/** A random bearer token. */
export const newToken = (): string => randomBytes(32).toString('base64url');

export function newTokens(): Tokens {
  return { admin: newToken(), controller: newToken(), agent: newToken() };
}

/** kube-apiserver --token-auth-file: `token,user,uid,"group1,group2"` per line. */
export function tokenAuthFile(tokens: Tokens): string {
  return IDENTITY_NAMES.map((name) => {
    const id = IDENTITIES[name];
    return `${tokens[name]},${id.username},${id.uid},"${id.groups.join(',')}"`;
  }).join('\n') + '\n';
}

export interface KeyPairPem {
  publicKey: string;
  privateKey: string;
}

/** RSA key pair for --service-account-key-file / --service-account-signing-key-file. */
export function serviceAccountKeyPair(): KeyPairPem {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}
