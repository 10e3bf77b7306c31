// `make run` — the README's first command — as a user meets it: `vmove demo` starts a control
// plane, the controller and three demo nodes with the demo VMs; the user applies the example live
// move with kubectl and watches it succeed; Ctrl-C stops everything the demo started but the
// control plane; a second run reuses that control plane, and the VMs are where the move left them.
// Its own folders (--dir, VMOVE_CLUSTER_DIR): a developer's `make run` is never touched.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { VirtualMachine } from '../../src/api/types';
import { kubectl, kubectlOrThrow } from '../../src/cluster/kubectl';
import { pollUntil } from '../support/poll';

jest.setTimeout(300_000);

const REPO = resolve(__dirname, '..', '..');
const CLI = join(REPO, 'dist', 'cli', 'main.js');
const root = mkdtempSync(join(tmpdir(), 'vmove-demo-'));
const env = { ...process.env, VMOVE_CLUSTER_DIR: join(root, 'cluster'), VMOVE_LOG_PRETTY: '0' };
const demoDir = join(root, 'demo');

interface Demo {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

let demo: Demo | undefined;

function startDemo(): Demo {
  const proc = spawn(process.execPath, [CLI, 'demo', '--driver', 'sim', '--dir', demoDir], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, output: () => out, exited };
}

const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> =>
  pollUntil(what, probe, { timeoutMs, intervalMs: 250, retryErrors: true, context: () => `demo output:\n${demo?.output().slice(-4000)}` });

/** Processes whose command line names the demo's folder: the agents and the controller it started. */
const demoProcesses = (): string[] => {
  try {
    return execFileSync('pgrep', ['-fa', demoDir], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
};

/** The kubeconfig the demo tells the user to export. */
const kubeconfigOf = (d: Demo): string | undefined => /export KUBECONFIG=(\S+)/.exec(d.output())?.[1];

const vms = async (kc: string): Promise<Map<string, VirtualMachine['status']>> => {
  const list = JSON.parse(await kubectlOrThrow(kc, ['get', 'virtualmachines', '-o', 'json'])) as { items: VirtualMachine[] };
  return new Map(list.items.map((v) => [v.metadata.name!, v.status]));
};

afterAll(async () => {
  if (demo && demo.proc.exitCode === null) {
    demo.proc.kill('SIGINT');
    await demo.exited;
  }
  execFileSync(process.execPath, [CLI, 'cluster', 'down'], { env, stdio: 'ignore' });
  rmSync(root, { recursive: true, force: true });
});

test('the demo runs a live move applied with kubectl, stops cleanly on Ctrl-C, and starts again where it left off', async () => {
  demo = startDemo();
  await until('the demo to say it is running', async () => (demo!.output().includes('vmove is running') ? true : undefined), 240_000);
  expect(demo.output()).toContain('vmove is running (sim driver, nodes node-a, node-b, node-c');
  const kc = kubeconfigOf(demo)!;
  expect(kc).toBe(join(root, 'cluster', 'admin.kubeconfig'));

  // The demo VMs from examples/ come up on their nodes.
  await until('the demo VMs to run', async () => {
    const s = await vms(kc);
    return s.get('web')?.phase === 'Running' && s.get('db')?.phase === 'Running' ? true : undefined;
  });
  const nodes = await kubectlOrThrow(kc, ['get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}']);
  expect(nodes.split(' ').sort()).toEqual(['node-a', 'node-b', 'node-c']);

  // What the demo tells the user to do next.
  expect(demo.output()).toContain('kubectl apply -f examples/move-live.yaml');
  await kubectlOrThrow(kc, ['apply', '-f', join(REPO, 'examples', 'move-live.yaml')]);
  const phase = await until('the example move to end', async () => {
    const p = (await kubectl(kc, ['get', 'moverequest', 'web-to-node-b', '-o', 'jsonpath={.status.phase}'])).stdout;
    return ['Succeeded', 'Failed', 'Cancelled'].includes(p) ? p : undefined;
  });
  expect(phase).toBe('Succeeded');
  expect((await vms(kc)).get('web')).toMatchObject({ nodeName: 'node-b', phase: 'Running' });
  expect(demoProcesses().length).toBeGreaterThanOrEqual(4); // three agents and the controller

  // Ctrl-C: the demo ends, and nothing it started but the control plane outlives it.
  demo.proc.kill('SIGINT');
  expect(await demo.exited).toBe(0);
  await until('the agents and the controller to be gone', async () => (demoProcesses().length === 0 ? true : undefined), 30_000);
  expect((await kubectl(kc, ['get', 'namespaces'])).code).toBe(0);

  // Again: the same control plane, the same hosts — web still runs on node-b, where it moved.
  demo = startDemo();
  await until('the demo to say it is running again', async () => (demo!.output().includes('vmove is running') ? true : undefined));
  expect(demo.output()).not.toContain('starting the demo hosts empty');
  expect(kubeconfigOf(demo)).toBe(kc);
  await until('web to be reported Running on node-b', async () => {
    const web = (await vms(kc)).get('web');
    return web?.phase === 'Running' && web.nodeName === 'node-b' ? true : undefined;
  });
});
