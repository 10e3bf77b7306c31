// The agent's API over TLS, with certificates the local PKI issues with the real openssl: plain
// HTTP is refused, a client that does not trust the vmove CA fails, and a client that means to
// call node-a refuses an agent presenting node-b's certificate — before sending anything.
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type RunningAgent } from '../../../src/agent/agent';
import { AgentClient, AgentUntrustedError } from '../../../src/agent/client';
import { migrationTlsDir, tlsFilesOfDir } from '../../../src/agent/tlsFiles';
import { CA_CERT, issueNodeCert, nodeSubjectAltName } from '../../../src/cluster/agentPki';
import { SimDriver } from '../../../src/drivers/sim';

const secret = 'tls-unit-test-secret-0123456789';

describe('agent API over TLS', () => {
  let work: string;
  let pki: string;
  let ca: string;
  let driver: SimDriver;
  /** node-a's agent, serving node-a's certificate. */
  let a: RunningAgent;
  /** node-a's host, serving node-b's certificate: answering for another host. */
  let impostor: RunningAgent;

  const hostOf = (name: string) => ({
    nodeName: name,
    stateDir: join(work, name, 'state'),
    localDir: join(work, name, 'local'),
    sharedDir: join(work, 'shared'),
    imagesDir: join(work, 'images'),
    migrationAddress: '127.0.0.1',
    migrationPorts: [26100, 26104] as [number, number],
    capacity: { cpu: 2, memoryBytes: 2 ** 32 },
    storage: ['Local' as const],
  });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'vmove-tls-'));
    pki = join(work, 'pki');
    const dirA = await issueNodeCert(pki, 'node-a', ['127.0.0.1'], join(work, 'node-a', 'tls'));
    const dirB = await issueNodeCert(pki, 'node-b', ['127.0.0.1'], join(work, 'node-b', 'tls'));
    ca = await readFile(join(pki, CA_CERT), 'utf8');
    driver = await SimDriver.open(hostOf('node-a'));
    a = await startAgent({ host: hostOf('node-a'), driver, auth: { mode: 'shared-secret', secret }, tls: tlsFilesOfDir(dirA) });
    impostor = await startAgent({ host: hostOf('node-a'), driver, auth: { mode: 'shared-secret', secret }, tls: tlsFilesOfDir(dirB) });
  });

  afterAll(async () => {
    await a?.stop();
    await impostor?.stop();
    await driver?.close();
    await rm(work, { recursive: true, force: true });
  });

  test('the certificate names the node and its address, signed by the vmove CA', async () => {
    const cert = new X509Certificate(await readFile(join(work, 'node-a', 'tls', 'server-cert.pem')));
    expect(cert.subjectAltName).toBe('DNS:node-a, IP Address:127.0.0.1');
    expect(cert.checkIssued(new X509Certificate(ca))).toBe(true);
    expect(cert.verify(new X509Certificate(ca).publicKey)).toBe(true);
    expect(nodeSubjectAltName('node-a', ['10.0.0.5', 'host.example'])).toBe('DNS:node-a,IP:10.0.0.5,DNS:host.example');
  });

  test('the endpoint is https and plain HTTP to the port gets no answer', async () => {
    expect(a.endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const plain = a.endpoint.replace(/^https:/, 'http:');
    await expect(fetch(`${plain}/healthz`)).rejects.toThrow();
  });

  test('a client that does not trust the vmove CA fails', async () => {
    const client = new AgentClient({ token: () => secret });
    await expect(client.listVms({ endpoint: a.endpoint, node: 'node-a' })).rejects.toBeInstanceOf(AgentUntrustedError);
    await client.close();
  });

  test('with the CA and the right node: 200', async () => {
    const client = new AgentClient({ token: () => secret, ca: () => ca });
    expect(await client.listVms({ endpoint: a.endpoint, node: 'node-a' })).toEqual([]);
    await client.close();
  });

  test("node-a's address presenting node-b's certificate is refused, naming both", async () => {
    const client = new AgentClient({ token: () => secret, ca: () => ca });
    const call = client.listVms({ endpoint: impostor.endpoint, node: 'node-a' });
    await expect(call).rejects.toBeInstanceOf(AgentUntrustedError);
    await expect(call).rejects.toThrow(/does not name node node-a \(it names DNS:node-b/);
    // The same certificate is fine for the node it names.
    expect(await client.listVms({ endpoint: impostor.endpoint, node: 'node-b' })).toEqual([]);
    await client.close();
  });

  test('without TLS material the agent does not start unless plain HTTP is asked for', async () => {
    await expect(startAgent({ host: hostOf('node-c'), driver, auth: { mode: 'shared-secret', secret } })).rejects.toThrow(/--insecure-http/);
  });

  test('separate files get a migration folder in QEMU layout made of links to them', async () => {
    const dirA = join(work, 'node-a', 'tls');
    expect(migrationTlsDir(tlsFilesOfDir(dirA), join(work, 'state-x'))).toBe(dirA);
    const files = { certFile: join(dirA, 'server-cert.pem'), keyFile: join(dirA, 'server-key.pem'), caFile: join(pki, CA_CERT) };
    const out = migrationTlsDir(files, join(work, 'state-y'));
    expect(out).toBe(join(work, 'state-y', 'migration-tls'));
    expect(await readlink(join(out, 'client-key.pem'))).toBe(files.keyFile);
    expect(await readlink(join(out, 'ca-cert.pem'))).toBe(files.caFile);
  });
});
