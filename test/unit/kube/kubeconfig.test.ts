// How the controller finds its API server and credentials: as kubectl does (an explicit file,
// $KUBECONFIG merged first-wins, ~/.kube/config, else the Pod's service account), and what it
// leaves to client-node (exec plugins, auth providers).
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { loadConnection, type Connection } from '../../../src/kube/kubeconfig';

const dir = mkdtempSync(path.join(os.tmpdir(), 'vmove-kubeconfig-'));
const none = { env: {}, home: path.join(dir, 'nohome'), serviceAccountDir: path.join(dir, 'nosa') };

function kubeconfig(name: string, doc: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, stringify(doc));
  return file;
}

const conn = (c: ReturnType<typeof loadConnection>): Connection => {
  if (!('server' in c)) throw new Error(`delegated: ${c.reason}`);
  return c;
};

test('reads the current context: server, CA file relative to the kubeconfig, client certificate data', () => {
  mkdirSync(path.join(dir, 'pki'), { recursive: true });
  writeFileSync(path.join(dir, 'pki', 'ca.crt'), 'CA PEM');
  const file = kubeconfig('certs.yaml', {
    'current-context': 'admin',
    contexts: [{ name: 'other', context: { cluster: 'x', user: 'x' } }, { name: 'admin', context: { cluster: 'local', user: 'admin' } }],
    clusters: [{ name: 'local', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority': 'pki/ca.crt', 'tls-server-name': 'kubernetes' } }],
    users: [{ name: 'admin', user: { 'client-certificate-data': Buffer.from('CERT').toString('base64'), 'client-key-data': Buffer.from('KEY').toString('base64') } }],
  });
  const c = conn(loadConnection(file, none));
  expect(c.server.href).toBe('https://127.0.0.1:6443/');
  expect(c.ca?.toString()).toBe('CA PEM');
  expect(c.cert?.toString()).toBe('CERT');
  expect(c.key?.toString()).toBe('KEY');
  expect(c.tlsServerName).toBe('kubernetes');
  expect(c.token).toBeUndefined();
});

test('$KUBECONFIG files merge as kubectl merges them: the first to name a context or user wins', () => {
  const a = kubeconfig('a.yaml', { 'current-context': 'dev', users: [{ name: 'me', user: { token: 'from-a' } }] });
  const b = kubeconfig('b.yaml', {
    'current-context': 'prod',
    contexts: [{ name: 'dev', context: { cluster: 'c', user: 'me' } }],
    clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:443', 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'me', user: { token: 'from-b' } }],
  });
  const c = conn(loadConnection(undefined, { ...none, env: { KUBECONFIG: [a, path.join(dir, 'missing.yaml'), b].join(path.delimiter) } }));
  expect(c.server.host).toBe('10.0.0.1');
  expect(c.insecureSkipTlsVerify).toBe(true);
  expect(c.token?.()).toBe('from-a');
});

test('a user with an exec plugin is left to client-node; a context that names nothing is a clear error', () => {
  const exec = kubeconfig('exec.yaml', {
    'current-context': 'eks',
    contexts: [{ name: 'eks', context: { cluster: 'c', user: 'aws' } }],
    clusters: [{ name: 'c', cluster: { server: 'https://eks.example' } }],
    users: [{ name: 'aws', user: { exec: { command: 'aws', args: ['eks', 'get-token'] } } }],
  });
  expect(loadConnection(exec, none)).toEqual({ delegate: 'client-node', files: [exec], reason: 'user "aws" gets credentials from an exec plugin' });
  const broken = kubeconfig('broken.yaml', { 'current-context': 'gone', contexts: [] });
  expect(() => loadConnection(broken, none)).toThrow('current-context "gone" is not among its contexts');
});

test("in a Pod: the kubernetes Service's address from the environment, the service account's CA, and its token read again after a minute (kubelet rotates it)", () => {
  const sa = path.join(dir, 'sa');
  mkdirSync(sa, { recursive: true });
  writeFileSync(path.join(sa, 'token'), 'token-1\n');
  writeFileSync(path.join(sa, 'ca.crt'), 'CLUSTER CA');
  const c = conn(loadConnection(undefined, { ...none, env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountDir: sa }));
  expect(c.server.href).toBe('https://[fd00::1]/');
  expect(c.ca?.toString()).toBe('CLUSTER CA');
  const now = jest.spyOn(Date, 'now');
  try {
    now.mockReturnValue(1_000_000);
    expect(c.token?.()).toBe('token-1');
    writeFileSync(path.join(sa, 'token'), 'token-2\n');
    now.mockReturnValue(1_030_000);
    expect(c.token?.()).toBe('token-1');
    now.mockReturnValue(1_061_000);
    expect(c.token?.()).toBe('token-2');
  } finally {
    now.mockRestore();
  }
});

test('with no kubeconfig and no service account it says where it looked', () => {
  expect(() => loadConnection(undefined, none)).toThrow('no kubeconfig: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a Pod with a service account');
});
