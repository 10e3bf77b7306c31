// Two `vmove agent` processes (sim driver) against a real kube-apiserver: the Lease heartbeat,
// VM status reporting, HTTPS with the local vmove CA's node certificates, TokenReview auth with
// the vmove-agent audience (401/403/200) and a cold disk copy between the agents under the agent
// identity (its own audience-bound token). Needs `npm run build` (the CLI runs from dist/).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CoordinationV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { AgentClient } from '../../src/agent/client';
import { CA_CERT, issueNodeCert } from '../../src/cluster/agentPki';
import { agentGet, expiredCopy, requestToken } from '../support/agentTokens';
import type { OperationRequest, OperationStatus } from '../../src/protocol/operations';
import { GROUP, PLURALS, VERSION, type VirtualMachine } from '../../src/api/types';
import { createSimImage, readSimDiskHeader, simDiskPath } from '../../src/drivers/sim';
import type { VmSpec } from '../../src/protocol/vm';
import { CLUSTER_START_TIMEOUT_MS, startTestCluster, type TestCluster } from '../support/testCluster';
import { pollUntil } from '../support/poll';

jest.setTimeout(120_000);

const CLI = resolve(__dirname, '../../dist/cli/main.js');
const MiB = 2 ** 20;

interface AgentProcess {
  node: string;
  endpoint: string;
  proc: ChildProcess;
  args: string[];
}

let cluster: TestCluster;
let work: string;
const agents: Record<string, AgentProcess> = {};
let controller: AgentClient;

function agentArgs(node: string, port: number): string[] {
  return [
    CLI, 'agent',
    '--node', node,
    '--driver', 'sim',
    '--kubeconfig', cluster.agentKubeconfig,
    '--auth', 'tokenreview',
    '--state-dir', join(work, node, 'state'),
    '--local-dir', join(work, node, 'local'),
    '--shared-dir', join(work, 'shared'),
    '--images-dir', join(work, 'images'),
    '--migration-ports', `${port}-${port + 4}`,
    '--cpu', '4',
    '--memory', '8Gi',
    '--sim-time-scale', '10',
    '--endpoint-file', join(work, node, 'endpoint'),
    '--tls-dir', join(work, node, 'tls'),
  ];
}

async function launch(node: string, args: string[]): Promise<AgentProcess> {
  const endpointFile = join(work, node, 'endpoint');
  await rm(endpointFile, { force: true });
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, VMOVE_LOG_LEVEL: 'warn' } });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 20_000;
  while (!existsSync(endpointFile)) {
    if (proc.exitCode !== null) throw new Error(`agent ${node} exited ${proc.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`agent ${node} did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { node, endpoint: (await readFile(endpointFile, 'utf8')).trim(), proc, args };
}

async function stopProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> =>
  pollUntil(what, probe, { timeoutMs, intervalMs: 100, retryErrors: true });

async function run(endpoint: string, req: OperationRequest): Promise<OperationStatus> {
  const opId = `it-${req.kind}-${Math.random().toString(36).slice(2)}`;
  let st = await controller.putOperation(endpoint, opId, req, { waitMs: 10_000 });
  while (st.state === 'Running') st = (await controller.getOperation(endpoint, opId, { waitMs: 10_000 }))!;
  return st;
}

async function createVm(name: string, disks: { name: string; size: string; storage: string }[]): Promise<VirtualMachine> {
  const api = cluster.kubeClient().makeApiClient(CustomObjectsApi);
  return (await api.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: 'default',
    plural: PLURALS.VirtualMachine,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'VirtualMachine', metadata: { name }, spec: { image: 'testguest', cpu: 1, memory: '256Mi', disks } },
  })) as VirtualMachine;
}

async function getVm(name: string): Promise<VirtualMachine> {
  const api = cluster.kubeClient().makeApiClient(CustomObjectsApi);
  return (await api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'default', plural: PLURALS.VirtualMachine, name })) as VirtualMachine;
}

async function patchVmStatus(name: string, status: Record<string, unknown>): Promise<void> {
  const api = cluster.kubeClient().makeApiClient(CustomObjectsApi);
  await api.patchNamespacedCustomObjectStatus(
    { group: GROUP, version: VERSION, namespace: 'default', plural: PLURALS.VirtualMachine, name, body: { status } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

function specOf(vm: VirtualMachine, disks: VmSpec['disks'] = []): VmSpec {
  return { id: `default_${vm.metadata.name}`, uid: vm.metadata.uid!, image: 'testguest', cpu: 1, memoryBytes: 256 * MiB, disks };
}

async function leaseJson(node: string): Promise<{ metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: Record<string, unknown> }> {
  const r = await cluster.kubectl(['get', 'lease', '-n', 'vmove-system', `vmove-agent-${node}`, '-o', 'json']);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  cluster = await startTestCluster();
  const controllerToken = await requestToken(cluster, 'vmove-controller');
  const ca = await readFile(join(cluster.agentPkiDir, CA_CERT), 'utf8');
  controller = new AgentClient({ token: () => controllerToken, ca: () => ca });
  work = await mkdtemp(join(tmpdir(), 'vmove-agent-it-'));
  for (const node of ['node-a', 'node-b']) await issueNodeCert(cluster.agentPkiDir, node, ['127.0.0.1'], join(work, node, 'tls'));
  await createSimImage(join(work, 'images'), 'testguest');
  const base = 27000 + (process.pid % 1000) * 10;
  for (const [i, node] of ['node-a', 'node-b'].entries()) agents[node] = await launch(node, agentArgs(node, base + i * 5));
}, CLUSTER_START_TIMEOUT_MS);

afterAll(async () => {
  await Promise.all(Object.values(agents).map((a) => stopProcess(a.proc)));
  await cluster?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('Lease heartbeat', () => {
  test('advertises endpoint and capabilities, with a microsecond renewTime', async () => {
    const lease = await waitFor('the Lease', () => leaseJson('node-a'));
    expect(lease.metadata.labels).toMatchObject({ 'app.kubernetes.io/component': 'vmove-agent', 'vmove.dev/node': 'node-a' });
    expect(lease.metadata.annotations['vmove.dev/endpoint']).toBe(agents['node-a']!.endpoint);
    expect(JSON.parse(lease.metadata.annotations['vmove.dev/capabilities']!)).toMatchObject({
      driver: 'sim',
      cpu: 4,
      memoryBytes: 8 * 1024 * MiB,
      storage: ['Local', 'SharedFile', 'SharedBlock'],
      liveMigration: true,
      migrationAddress: '127.0.0.1',
    });
    expect(lease.spec).toMatchObject({ holderIdentity: 'node-a', leaseDurationSeconds: 15 });
    expect(lease.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  test('is renewed every few seconds', async () => {
    const api = cluster.kubeClient().makeApiClient(CoordinationV1Api);
    const renewTime = async () => new Date((await api.readNamespacedLease({ name: 'vmove-agent-node-b', namespace: 'vmove-system' })).spec!.renewTime!).getTime();
    const first = await waitFor('the Lease', renewTime);
    const later = await waitFor('a renewal', async () => {
      const t = await renewTime();
      return t > first ? t : undefined;
    }, 12_000);
    expect(later - first).toBeGreaterThanOrEqual(4_000);
    expect(later - first).toBeLessThan(15_000);
  });
});

describe('migration network', () => {
  test('--migration-cidr: the host\'s address in it is advertised; a network the host is not on stops the agent at start, saying so', async () => {
    const base = 27500 + (process.pid % 100) * 10;
    const args = (node: string, cidr: string) => [...agentArgs(node, base), '--migration-cidr', cidr];
    await issueNodeCert(cluster.agentPkiDir, 'node-m', ['127.0.0.1'], join(work, 'node-m', 'tls'));
    const onLoopback = await launch('node-m', args('node-m', '127.0.0.0/8'));
    try {
      const lease = await waitFor('the Lease of node-m', () => leaseJson('node-m'));
      expect(JSON.parse(lease.metadata.annotations['vmove.dev/capabilities']!)).toMatchObject({ migrationAddress: '127.0.0.1' });
    } finally {
      await stopProcess(onLoopback.proc);
    }
    await rm(join(work, 'node-m', 'endpoint'), { force: true });
    const proc = spawn(process.execPath, args('node-m', '10.255.254.0/24'), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => proc.once('exit', r));
    expect({ code, stderr: stderr.trim() }).toEqual({
      code: 2,
      stderr: expect.stringMatching(/^vmove agent: --migration-cidr 10\.255\.254\.0\/24: no interface of this host has an address in it \(addresses: .*lo 127\.0\.0\.1\/8.*\)$/),
    });
    expect(existsSync(join(work, 'node-m', 'endpoint'))).toBe(false);
  });
});

describe('TLS and TokenReview auth with the vmove-agent audience', () => {
  const url = (path: string) => `${agents['node-a']!.endpoint}${path}`;
  const call = (path: string, token?: string) => agentGet(cluster, url(path), token);

  test('the agent serves HTTPS only: its Lease advertises https, plain HTTP gets no answer', async () => {
    expect(agents['node-a']!.endpoint).toMatch(/^https:\/\//);
    await expect(fetch(url('/healthz').replace(/^https:/, 'http:'))).rejects.toThrow();
    // Without the vmove CA a client does not trust it.
    await expect(fetch(url('/healthz'))).rejects.toThrow();
    expect((await call('/healthz')).status).toBe(200);
  });

  test('no token, an unknown one, or an expired one: 401', async () => {
    expect((await call('/v1/vms')).status).toBe(401);
    const res = await call('/v1/vms', 'not-a-token-anyone-issued');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const issued = await requestToken(cluster, 'vmove-controller');
    expect((await call('/v1/vms', expiredCopy(cluster, issued))).status).toBe(401);
    // The same re-signing with times still valid is accepted: it is the expiry that was refused.
    expect((await call('/v1/vms', expiredCopy(cluster, issued, -120))).status).toBe(200);
  });

  test("the controller's tokens without the vmove-agent audience: 401 (its API token opens no agent)", async () => {
    expect((await call('/v1/vms', cluster.tokens.controller)).status).toBe(401);
    expect((await call('/v1/vms', await requestToken(cluster, 'vmove-controller', null))).status).toBe(401);
    expect((await call('/v1/vms', await requestToken(cluster, 'vmove-controller', 'some-other-service'))).status).toBe(401);
  });

  test("the controller's vmove-agent token may call everything: 200", async () => {
    expect((await call('/v1/vms', await requestToken(cluster, 'vmove-controller'))).status).toBe(200);
  });

  test("the agent's own identity may only read disks: 403 on operations", async () => {
    const agentToken = await requestToken(cluster, 'vmove-agent');
    expect((await call('/v1/vms', agentToken)).status).toBe(403);
    expect((await call('/v1/operations/x', agentToken)).status).toBe(403);
    expect((await call('/v1/disks/default_none/root', agentToken)).status).toBe(404);
  });
});

describe('VM status reporting', () => {
  test('a VM running here is reported Running on this node, Moving while a move holds it', async () => {
    const vm = await createVm('web', [{ name: 'root', size: '1Gi', storage: 'SharedFile' }]);
    await patchVmStatus('web', { scheduledNode: 'node-a', phase: 'Pending' });
    const spec = specOf(vm, [{ name: 'root', sizeBytes: 1024 * MiB, storage: 'SharedFile' }]);
    expect(await run(agents['node-a']!.endpoint, { kind: 'ensureVm', vm: spec, disks: 'keep', start: true })).toMatchObject({ state: 'Succeeded' });

    const running = await waitFor('status Running', async () => {
      const s = (await getVm('web')).status;
      return s?.phase === 'Running' ? s : undefined;
    });
    expect(running).toMatchObject({ scheduledNode: 'node-a', nodeName: 'node-a', phase: 'Running', cpu: 1, memory: '256Mi' });

    await patchVmStatus('web', { moveRef: { name: 'web-move', uid: 'mr-1' } });
    await waitFor('status Moving', async () => (await getVm('web')).status?.phase === 'Moving');
    await patchVmStatus('web', { moveRef: null });
    await waitFor('status Running again', async () => (await getVm('web')).status?.phase === 'Running');

    // Hotplug shows up as the resources the VM runs with.
    expect(await run(agents['node-a']!.endpoint, { kind: 'hotplug', vm: spec, cpu: 2, memoryBytes: 512 * MiB })).toMatchObject({ state: 'Succeeded' });
    const grown = await waitFor('new resources', async () => {
      const s = (await getVm('web')).status;
      return s?.cpu === 2 ? s : undefined;
    });
    expect(grown).toMatchObject({ cpu: 2, memory: '512Mi', nodeName: 'node-a', scheduledNode: 'node-a' });
  });
});

describe('cold disk copy between two agent processes', () => {
  test('the target pulls a stopped VM\'s local disk from the source with its own identity', async () => {
    const vm = await createVm('db', [{ name: 'data', size: '2Gi', storage: 'Local' }]);
    const spec = specOf(vm, [{ name: 'data', sizeBytes: 2048 * MiB, storage: 'Local' }]);
    const [a, b] = [agents['node-a']!.endpoint, agents['node-b']!.endpoint];
    expect(await run(a, { kind: 'ensureVm', vm: spec, disks: 'keep', start: true })).toMatchObject({ state: 'Succeeded' });
    expect(await run(a, { kind: 'stopVm', vm: spec })).toMatchObject({ state: 'Succeeded' });

    const copy = await run(b, { kind: 'copyDisks', vm: spec, from: { endpoint: a } });
    expect(copy).toMatchObject({ state: 'Succeeded', copy: { totalBytes: 2048 * MiB, copiedBytes: 2048 * MiB } });
    const header = await readSimDiskHeader(simDiskPath({ localDir: join(work, 'node-b', 'local'), sharedDir: join(work, 'shared') }, spec.id, spec.disks[0]!));
    // The source's disk (booted once: generation 1), not a fresh one from the image.
    expect(header).toMatchObject({ vmUid: vm.metadata.uid, generation: 1, origin: 'copy', sizeBytes: 2048 * MiB });

    expect(await run(b, { kind: 'ensureVm', vm: spec, disks: 'keep', start: true })).toMatchObject({ state: 'Succeeded' });
    expect(await run(b, { kind: 'verify', vm: spec, windowMs: 2_000, expectRunning: true })).toMatchObject({ state: 'Succeeded' });
  });
});

describe('agent restart', () => {
  test('the Lease stays (it expires on its own); the restarted agent renews it and answers for old operations', async () => {
    const a = agents['node-a']!;
    const vm = await createVm('keeper', []);
    const spec = specOf(vm);
    const opId = 'it-restart-ensure';
    const first = await controller.putOperation(a.endpoint, opId, { kind: 'ensureVm', vm: spec, disks: 'keep', start: true }, { waitMs: 10_000 });
    expect(first.state).toBe('Succeeded');

    await stopProcess(a.proc);
    const left = await leaseJson('node-a');
    expect(left.metadata.annotations['vmove.dev/endpoint']).toBe(a.endpoint);

    agents['node-a'] = await launch('node-a', a.args);
    const again = agents['node-a'];
    expect(await controller.getOperation(again.endpoint, opId)).toEqual(first);
    const vms = await controller.listVms(again.endpoint);
    expect(vms.find((v) => v.id === spec.id)?.state).toBe('Running');
    await waitFor('the Lease to advertise the new endpoint', async () => (await leaseJson('node-a')).metadata.annotations['vmove.dev/endpoint'] === again.endpoint);
  });
});
