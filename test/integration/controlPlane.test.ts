// The local control plane as tests, the controller, the agents and a developer meet it:
// real etcd + kube-apiserver, static-token identities under RBAC, one instance per folder.
import { AuthenticationV1Api, KubeConfig } from '@kubernetes/client-node';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { httpsGet } from '../../src/cluster/http';
import { AGENT_USERNAME, CONTROLLER_USERNAME } from '../../src/cluster/identities';
import { isRunning } from '../../src/cluster/processes';
import { readState, instancePaths } from '../../src/cluster/state';
import { CLUSTER_START_TIMEOUT_MS, startTestCluster, type TestCluster } from '../support/testCluster';
import { setTimeout as sleep } from 'node:timers/promises';

const REPO = resolve(__dirname, '..', '..');
const CLI = join(REPO, 'dist', 'cli', 'main.js');

async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

const processesOf = (c: { pids: { etcd: number; kubeApiserver: number } }, exe: { etcd: string; kubeApiserver: string }) => [
  [c.pids.etcd, exe.etcd] as const,
  [c.pids.kubeApiserver, exe.kubeApiserver] as const,
];

function executables(dir: string): { etcd: string; kubeApiserver: string } {
  const state = readState(instancePaths(dir));
  if (!state?.etcd || !state.kubeApiserver) throw new Error(`no processes recorded in ${dir}`);
  return { etcd: state.etcd.executable, kubeApiserver: state.kubeApiserver.executable };
}

let cluster: TestCluster;
let exe: { etcd: string; kubeApiserver: string };
beforeAll(async () => {
  cluster = await startTestCluster();
  exe = executables(cluster.dir);
}, CLUSTER_START_TIMEOUT_MS);
afterAll(() => cluster?.stop(), 60_000);

describe('a started control plane', () => {
  test('answers kubectl with the admin kubeconfig, has vmove-system and the CRDs', async () => {
    const ns = await cluster.kubectl(['get', 'namespace', 'vmove-system', '-o', 'jsonpath={.status.phase}']);
    expect(ns).toMatchObject({ code: 0, stdout: 'Active' });
    const crd = await cluster.kubectl([
      'get', 'crd', 'moverequests.vmove.dev', '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}',
    ]);
    expect(crd).toMatchObject({ code: 0, stdout: 'True' });
  });

  test('the admin KubeConfig from kubeClient() talks to the same server', () => {
    const kc = cluster.kubeClient();
    expect(kc.getCurrentCluster()?.server).toBe(cluster.server);
  });

  test('the controller identity may list MoveRequests but not delete namespaces', async () => {
    const asController = (args: string[]) => cluster.kubectl(['--kubeconfig', cluster.controllerKubeconfig, ...args]);
    expect(await asController(['get', 'moverequests', '--all-namespaces'])).toMatchObject({ code: 0 });
    const del = await asController(['delete', 'namespace', 'default', '--dry-run=server']);
    expect(del.code).not.toBe(0);
    expect(del.stderr).toMatch(/forbidden/i);
    expect(del.stderr).toContain(CONTROLLER_USERNAME);
  });

  test('the agent identity may read VirtualMachines but not create MoveRequests', async () => {
    const asAgent = (args: string[], input?: string) =>
      cluster.kubectl(['--kubeconfig', cluster.agentKubeconfig, ...args], input ? { input } : {});
    expect(await asAgent(['get', 'virtualmachines', '-n', 'default'])).toMatchObject({ code: 0 });
    const create = await asAgent(['auth', 'can-i', 'create', 'moverequests.vmove.dev', '-n', 'default']);
    expect(create.stdout.trim()).toBe('no');
  });

  test('an unknown token is rejected with 401, a known one accepted', async () => {
    const bogus = await httpsGet(`${cluster.server}/api`, { caPem: cluster.caPem, token: 'not-a-vmove-token' });
    expect(bogus.status).toBe(401);
    const known = await httpsGet(`${cluster.server}/api`, { caPem: cluster.caPem, token: cluster.tokens.controller });
    expect(known.status).toBe(200);
  });

  test('a TokenReview by the agent names the controller for the controller token', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.agentKubeconfig);
    const auth = kc.makeApiClient(AuthenticationV1Api);
    const review = (token: string) =>
      auth.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });

    const controller = await review(cluster.tokens.controller);
    expect(controller.status?.authenticated).toBe(true);
    expect(controller.status?.user?.username).toBe(CONTROLLER_USERNAME);
    expect(controller.status?.user?.groups).toContain('system:serviceaccounts:vmove-system');

    const agent = await review(cluster.tokens.agent);
    expect(agent.status?.user?.username).toBe(AGENT_USERNAME);

    const unknown = await review('not-a-vmove-token');
    expect(unknown.status?.authenticated).toBeFalsy();
  });
});

describe('isolation and clean-up', () => {
  test('a second control plane runs side by side with its own ports and data, and stop leaves no processes', async () => {
    const second = await startTestCluster({ crds: false, rbac: false });
    try {
      expect(second.server).not.toBe(cluster.server);
      expect(second.dir).not.toBe(cluster.dir);
      expect(await second.kubectl(['create', 'namespace', 'only-in-second'])).toMatchObject({ code: 0 });
      expect((await cluster.kubectl(['get', 'namespace', 'only-in-second'])).code).not.toBe(0);
      expect((await second.kubectl(['get', 'crd', 'moverequests.vmove.dev'])).code).not.toBe(0);
    } finally {
      await second.stop();
    }
    for (const [pid, executable] of processesOf(second, exe)) expect(isRunning(pid, executable)).toBe(false);
    expect(existsSync(second.dir)).toBe(false);
    // The first one is untouched.
    expect(await cluster.kubectl(['get', 'namespace', 'vmove-system'])).toMatchObject({ code: 0 });
  }, CLUSTER_START_TIMEOUT_MS);

  test('etcd and kube-apiserver die with the process that started them, even on SIGKILL', async () => {
    expect(existsSync(CLI)).toBe(true); // integration tests run against the build (`make test` builds first)
    const dir = mkdtempSync(join(tmpdir(), 'vmove-owner-death-'));
    try {
      // A stand-in for a test process: starts a control plane, reports its pids, then idles.
      const script = `
        const { startControlPlane } = require(${JSON.stringify(join(REPO, 'dist', 'cluster', 'controlPlane.js'))});
        startControlPlane({ dir: ${JSON.stringify(dir)} }).then(
          (cp) => { process.stdout.write(JSON.stringify(cp.pids) + '\\n'); setInterval(() => {}, 1000); },
          (err) => { console.error(err); process.exit(1); });`;
      const owner = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const pids = await new Promise<{ etcd: number; kubeApiserver: number }>((res, rej) => {
        let out = '';
        owner.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('\n')) res(JSON.parse(out) as { etcd: number; kubeApiserver: number });
        });
        owner.once('exit', (code) => rej(new Error(`owner exited (${code}) before the control plane was ready`)));
      });
      expect(isRunning(pids.etcd, exe.etcd) && isRunning(pids.kubeApiserver, exe.kubeApiserver)).toBe(true);

      owner.kill('SIGKILL');
      expect(await eventually(() => !isRunning(pids.etcd, exe.etcd) && !isRunning(pids.kubeApiserver, exe.kubeApiserver))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, CLUSTER_START_TIMEOUT_MS);
});

describe('vmove cluster (the CLI behind make cluster)', () => {
  const run = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
      execFile(process.execPath, [CLI, 'cluster', ...args], { timeout: CLUSTER_START_TIMEOUT_MS }, (err, stdout, stderr) =>
        res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });
  const serverOf = (stdout: string): string | undefined => /https:\/\/127\.0\.0\.1:\d+/.exec(stdout)?.[0];

  test('up is idempotent, replaces a stale instance, and down stops it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmove-cli-cluster-'));
    try {
      expect((await run('status', '--dir', dir)).code).toBe(1);

      const first = await run('up', '--dir', dir);
      expect(first).toMatchObject({ code: 0 });
      expect(first.stdout).toContain(`export KUBECONFIG=${join(dir, 'admin.kubeconfig')}`);
      const server = serverOf(first.stdout);
      expect(server).toBeDefined();

      const again = await run('up', '--dir', dir);
      expect(again.stdout).toContain('already running');
      expect(serverOf(again.stdout)).toBe(server);

      const kubeconfig = (await run('kubeconfig', '--dir', dir, '--identity', 'controller')).stdout.trim();
      expect(kubeconfig).toBe(join(dir, 'controller.kubeconfig'));

      const state = readState(instancePaths(dir));
      if (!state?.kubeApiserver || !state.etcd) throw new Error('no state recorded');
      process.kill(state.kubeApiserver.pid, 'SIGKILL');
      expect((await run('status', '--dir', dir)).code).toBe(1);

      const replaced = await run('up', '--dir', dir);
      expect(replaced.stdout).toContain('replaced a stale control plane');
      expect(isRunning(state.etcd.pid, state.etcd.executable)).toBe(false);
      expect((await run('status', '--dir', dir)).code).toBe(0);

      const after = readState(instancePaths(dir));
      expect((await run('down', '--dir', dir)).stdout).toContain('stopped');
      for (const p of [after?.etcd, after?.kubeApiserver]) expect(p && isRunning(p.pid, p.executable)).toBe(false);
      expect((await run('status', '--dir', dir)).code).toBe(1);
    } finally {
      await run('down', '--dir', dir);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 3 * CLUSTER_START_TIMEOUT_MS);
});
