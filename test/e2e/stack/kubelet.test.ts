// What a platform team does first, on real nodes: the image built from the Dockerfile here, the
// Helm chart installed into a cluster with two real kubelet nodes (containerd, kubelet and
// kube-proxy each in its own network and mount namespace; src/local/kubeletCluster.ts), the pods
// going Ready, and VMs moved by the chart's controller and agents (sim driver) — through a leader
// killed mid-move, an agent pod deleted mid-move, a `helm upgrade` and a `helm uninstall`.
// Tests run one after another on one cluster.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubectl, kubectlOrThrow } from '../../../src/cluster/kubectl';
import { repoPath } from '../../../src/cluster/repo';
import { startKubeletCluster, stopKubeletCluster, type KubeletCluster } from '../../../src/local/kubeletCluster';
import { pollUntil } from '../../support/poll';

jest.setTimeout(600_000);

const NS = 'vmove-system';
const NET = 7; // its own bridge, addresses and namespaces: `make run RUNTIME=kubelet` uses 0
const NODES = ['node-a', 'node-b'];

/** Why this machine cannot run a kubelet node, or undefined when it can. */
function cannotRunNodes(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: kubelet nodes need root (network namespaces, mounts, cgroups)';
  try {
    execFileSync('unshare', ['--net', '--mount', 'true'], { stdio: 'ignore' });
  } catch {
    return '`unshare --net --mount true` failed: no network or mount namespaces here';
  }
  if (!existsSync('/sys/fs/cgroup/memory') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'no memory cgroup (v1) and no cgroup v2 mounted';
  return undefined;
}

const why = cannotRunNodes();
if (why) console.warn(`kubelet e2e skipped: ${why}`);
const describeNodes = why ? describe.skip : describe;

describeNodes('the Helm chart on two real kubelet nodes', () => {
  let c: KubeletCluster;
  let dir: string;
  const started = Date.now();
  const k = (args: string[]): Promise<string> => kubectlOrThrow(c.kubeconfig, args, { timeoutMs: 120_000 });
  const json = async <T>(args: string[]): Promise<T> => JSON.parse(await k([...args, '-o', 'json'])) as T;

  interface Pod { metadata: { name: string; uid: string }; spec: { nodeName?: string }; status: { conditions?: { type: string; status: string }[] } }
  const ready = (p: Pod): boolean => !!p.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');
  const pods = async (component: string): Promise<Pod[]> =>
    (await json<{ items: Pod[] }>(['-n', NS, 'get', 'pods', '-l', `app.kubernetes.io/component=vmove-${component}`])).items;
  const leader = async (): Promise<string> =>
    (await json<{ spec: { holderIdentity?: string } }>(['-n', NS, 'get', 'lease', 'vmove-controller'])).spec.holderIdentity ?? '';

  interface Move { status?: { phase?: string; state?: string; message?: string; history?: { phase: string }[] } }
  const move = (name: string): Promise<Move> => json<Move>(['get', 'moverequest', name]);
  const moveEnds = (name: string): Promise<Move> =>
    pollUntil(`MoveRequest ${name} to end`, async () => {
      const m = await move(name);
      return ['Succeeded', 'Failed', 'Cancelled'].includes(m.status?.phase ?? '') ? m : undefined;
    }, { timeoutMs: 300_000, intervalMs: 1000, retryErrors: true });
  const moveTo = (name: string, node: string): string =>
    `apiVersion: vmove.dev/v1alpha1\nkind: MoveRequest\nmetadata: { name: ${name} }\nspec: { vmName: web, mode: Live, target: { nodeName: ${node} } }\n`;
  const vmNode = async (): Promise<string> => (await json<{ status?: { nodeName?: string } }>(['get', 'vmv', 'web'])).status?.nodeName ?? '';
  const allReady = async (): Promise<boolean> => {
    const [ctl, agents] = [await pods('controller'), await pods('agent')];
    return ctl.length === 2 && ctl.every(ready) && agents.length === NODES.length && agents.every(ready);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmove-kubelet-'));
    c = await startKubeletCluster({ dir, nodes: NODES, net: NET });
  }, 40 * 60_000);

  afterAll(async () => {
    if (dir) await stopKubeletCluster(dir);
    if (dir) rmSync(dir, { recursive: true, force: true });
    console.log(`kubelet e2e: ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }, 180_000);

  test('the controller Deployment (2 replicas) and the agent DaemonSet (one pod per node) are Ready; one controller leads; agents\' Leases name their nodes', async () => {
    await pollUntil('controller and agent pods Ready', allReady, { timeoutMs: 180_000, intervalMs: 1000 });
    const agents = await pods('agent');
    expect(agents.map((p) => p.spec.nodeName).sort()).toEqual(NODES);
    const controllers = (await pods('controller')).map((p) => p.metadata.name);
    expect(controllers).toContain(await pollUntil('a leader', leader, { timeoutMs: 60_000 }));
    for (const node of NODES) {
      const lease = await json<{ spec: { holderIdentity?: string } }>(['-n', NS, 'get', 'lease', `vmove-agent-${node}`]);
      expect(lease.spec.holderIdentity).toBe(node);
    }
  });

  test('kubectl apply of examples/vm-shared.yaml and a live MoveRequest move the VM from node-a to node-b through the pods', async () => {
    await k(['apply', '-f', repoPath('examples', 'vm-shared.yaml')]);
    await pollUntil('VM web running on node-a', async () => (await vmNode()) === 'node-a', { timeoutMs: 120_000, intervalMs: 1000, retryErrors: true });
    await k(['apply', '-f', repoPath('examples', 'move-live.yaml')]);
    const m = await moveEnds('web-to-node-b');
    expect(m.status?.phase).toBe('Succeeded');
    expect(m.status?.history?.map((h) => h.phase)).toEqual(['Pending', 'Scheduling', 'PreparingTarget', 'Migrating', 'SwitchingOver', 'Verifying', 'CleaningUp', 'Succeeded']);
    expect(await vmNode()).toBe('node-b');
  });

  test('the leader pod deleted mid-move: the other replica takes over and the move ends Succeeded', async () => {
    const before = await leader();
    await kubectlOrThrow(c.kubeconfig, ['apply', '-f', '-'], { input: moveTo('web-back-to-a', 'node-a') });
    await pollUntil('the move under way', async () => ((await move('web-back-to-a')).status?.history?.length ?? 0) >= 2, { timeoutMs: 60_000, intervalMs: 100, retryErrors: true });
    await k(['-n', NS, 'delete', 'pod', before, '--wait=false']);
    const m = await moveEnds('web-back-to-a');
    expect(m.status?.phase).toBe('Succeeded');
    expect(await vmNode()).toBe('node-a');
    const after = await leader();
    expect(after).not.toBe(before);
    expect(after).not.toBe('');
    await pollUntil('the Deployment back to 2 Ready replicas', allReady, { timeoutMs: 180_000, intervalMs: 1000 });
  });

  test('an agent pod deleted mid-move is recreated by the DaemonSet; its agent recovers its operations and the move ends Succeeded', async () => {
    const target = (await pods('agent')).find((p) => p.spec.nodeName === 'node-b')!;
    await kubectlOrThrow(c.kubeconfig, ['apply', '-f', '-'], { input: moveTo('web-agent-lost', 'node-b') });
    await pollUntil('the move under way', async () => ((await move('web-agent-lost')).status?.history?.length ?? 0) >= 2, { timeoutMs: 60_000, intervalMs: 100, retryErrors: true });
    await k(['-n', NS, 'delete', 'pod', target.metadata.name, '--wait=false']);
    const m = await moveEnds('web-agent-lost');
    expect(m.status?.phase).toBe('Succeeded');
    expect(await vmNode()).toBe('node-b');
    const again = await pollUntil('a new agent pod Ready on node-b', async () => (await pods('agent')).find((p) => p.spec.nodeName === 'node-b' && p.metadata.uid !== target.metadata.uid && ready(p)), { timeoutMs: 180_000, intervalMs: 1000 });
    expect(again.metadata.name).not.toBe(target.metadata.name);
  });

  test('helm upgrade with a changed value rolls the pods and loses no move', async () => {
    const old = new Set([...(await pods('controller')), ...(await pods('agent'))].map((p) => p.metadata.uid));
    await kubectlOrThrow(c.kubeconfig, ['apply', '-f', '-'], { input: moveTo('web-during-upgrade', 'node-a') });
    await c.helm(['upgrade', 'vmove', repoPath('charts', 'vmove'), '--namespace', NS, '--reuse-values', '--set', 'controller.logLevel=debug', '--set', 'agent.logLevel=debug', '--wait', '--timeout', '5m']);
    const m = await moveEnds('web-during-upgrade');
    expect(m.status?.phase).toBe('Succeeded');
    expect(await vmNode()).toBe('node-a');
    await pollUntil('only new pods, all Ready', async () => {
      const now = [...(await pods('controller')), ...(await pods('agent'))];
      return now.length === 2 + NODES.length && now.every((p) => ready(p) && !old.has(p.metadata.uid));
    }, { timeoutMs: 300_000, intervalMs: 1000 });
  });

  test('helm uninstall removes every object the chart made; the CRDs and the VMs stay', async () => {
    const manifest = await c.helm(['get', 'manifest', 'vmove', '--namespace', NS]);
    // Each document's kind and name; the agents' CA carries helm.sh/resource-policy: keep on purpose
    // (a reinstall keeps trusting the same CA), so it is the one object expected to stay.
    const docs = manifest.split(/^---$/m).map((d) => ({
      kind: /^kind: (\w+)$/m.exec(d)?.[1], name: /^metadata:\n(?: {2}.*\n)*? {2}name: ([\w.-]+)$/m.exec(d)?.[1], keep: d.includes('helm.sh/resource-policy: keep'),
    })).filter((d): d is { kind: string; name: string; keep: boolean } => !!d.kind && !!d.name);
    expect(docs.length).toBeGreaterThan(10);
    await c.helm(['uninstall', 'vmove', '--namespace', NS, '--wait', '--timeout', '5m']);
    for (const { kind, name, keep } of docs) {
      const r = await kubectl(c.kubeconfig, ['get', kind, name, '-n', NS, '--ignore-not-found', '-o', 'name']);
      expect(`${kind}/${name}: ${r.stdout.trim() ? 'present' : 'gone'}`).toBe(`${kind}/${name}: ${keep ? 'present' : 'gone'}`);
    }
    expect(docs.filter((d) => d.keep).map((d) => `${d.kind}/${d.name}`)).toEqual(['Secret/vmove-agent-ca']);
    await pollUntil('the chart\'s pods gone', async () => (await pods('controller')).length + (await pods('agent')).length === 0, { timeoutMs: 120_000, intervalMs: 1000 });
    expect(await k(['get', 'crd', 'virtualmachines.vmove.dev', '-o', 'name'])).toContain('virtualmachines.vmove.dev');
    expect(await k(['get', 'vmv', 'web', '-o', 'name'])).toContain('web');
  });

  test('stopping the cluster leaves no process, mount, network namespace or veth behind', async () => {
    await stopKubeletCluster(dir);
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(dir));
    expect(mounts).toEqual([]);
    const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(`vmove-${NET}-`));
    expect(netns).toEqual([]);
    const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`vmkn${NET}-`) || l.includes(`vmove-kn${NET}:`));
    expect(links).toEqual([]);
    const procs = execFileSync('ps', ['-eo', 'stat=,args='], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(dir) && !l.startsWith('Z'));
    expect(procs).toEqual([]);
    const cgroups = ['memory', 'cpu', 'pids'].filter((ctl) => existsSync(`/sys/fs/cgroup/${ctl}/vmove-${NET}-node-a`));
    expect(cgroups).toEqual([]);
  });
});
