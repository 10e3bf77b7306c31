// A local cluster with real nodes (`make run RUNTIME=kubelet`, the kubelet e2e test): the control
// plane of controlPlane.ts serving kubelets, kube-controller-manager and kube-scheduler beside it,
// and N nodes — containerd, kubelet and kube-proxy each in a network and mount namespace of its
// own (hack/kubelet-node.sh) — with the project's image (hack/build-image.sh) imported, then vmove
// installed by `helm install` of charts/vmove: the controller and agents run as the chart's pods.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { controlPlaneBinaries } from '../cluster/binaries';
import { startControlPlane, stopInstance, type ControlPlane } from '../cluster/controlPlane';
import { kubectl } from '../cluster/kubectl';
import { startDaemon, stopDaemon } from '../cluster/processes';
import { repoPath } from '../cluster/repo';
import { instancePaths, type ProcessRecord } from '../cluster/state';

export interface KubeletClusterOptions {
  /** Everything lives here: cluster/ (control plane), nodes/<name>/, nodes/images/ (what each node imports), kubelet.json. */
  dir: string;
  nodes: string[];
  /** 0-9: keeps this cluster's addresses, bridge and namespaces apart from another's. */
  net: number;
  /** Progress lines for a person (make run); silent when absent. */
  say?: (line: string) => void;
}

export interface KubeletCluster {
  dir: string;
  kubeconfig: string;
  server: string;
  nodes: { name: string; address: string }[];
  image: string;
  /** `helm` with this cluster's kubeconfig; rejects with helm's stderr when it fails. */
  helm(args: string[]): Promise<string>;
}

interface Recorded {
  net: number;
  nodes: string[];
  daemons: ProcessRecord[];
}

const NAMESPACE = 'vmove-system';
/** Where `make run RUNTIME=kubelet` keeps its cluster (`make cluster-down` stops it too). */
export const kubeletDemoDir = (): string => repoPath('.cache', 'kubelet');
const recordFile = (dir: string): string => join(dir, 'kubelet.json');
const clusterDirOf = (dir: string): string => join(dir, 'cluster');
const nodeDirOf = (dir: string, node: string): string => join(dir, 'nodes', node);
export const bridgeAddress = (net: number): string => `10.213.${net}.1`;

function run(cmd: string, args: string[], timeoutMs = 30 * 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim().split('\n').slice(-25).join('\n') || err.message}`));
      else resolve(stdout);
    });
  });
}

const hack = (script: string, ...args: string[]): Promise<string> => run('bash', [repoPath('hack', script), ...args]);
const lines = (out: string): string[] => out.trim().split('\n').filter(Boolean);

/** The last two lines an image script prints: the OCI archive and the image reference. */
async function buildOutputs(script: string): Promise<{ archive: string; ref: string }> {
  const [archive, ref] = lines(await hack(script)).slice(-2);
  if (!archive || !ref) throw new Error(`${script} printed no archive and image reference`);
  return { archive, ref };
}

export async function startKubeletCluster(o: KubeletClusterOptions): Promise<KubeletCluster> {
  const say = o.say ?? ((): void => undefined);
  if (existsSync(recordFile(o.dir))) await stopKubeletCluster(o.dir);
  mkdirSync(join(o.dir, 'nodes', 'images'), { recursive: true });
  const record: Recorded = { net: o.net, nodes: o.nodes, daemons: [] };
  const save = (): void => writeFileSync(recordFile(o.dir), JSON.stringify(record, null, 2));
  save();

  say('building kubelet, kube-controller-manager, kube-scheduler, kube-proxy and the images (cached after the first time) …');
  const [, nodeBin, pause, image, helmBin] = await Promise.all([
    controlPlaneBinaries(),
    hack('build-node-components.sh').then((out) => lines(out).pop()!),
    buildOutputs('build-pause-image.sh'),
    buildOutputs('build-image.sh'),
    hack('build-helm.sh').then((out) => lines(out).pop()!),
  ]);
  for (const img of [pause, image]) {
    const link = join(o.dir, 'nodes', 'images', img.archive.split('/').pop()!);
    rmSync(link, { force: true });
    symlinkSync(img.archive, link);
  }

  await hack('kubelet-node.sh', 'bridge-up', String(o.net));
  say('starting the control plane …');
  const cp: ControlPlane = await startControlPlane({
    dir: clusterDirOf(o.dir),
    lifetime: 'detached',
    kubelets: { advertiseAddress: bridgeAddress(o.net), nodes: o.nodes },
  });
  const paths = instancePaths(cp.dir);
  const admin = cp.kubeconfigs.admin;
  for (const [name, args] of [
    ['kube-controller-manager', [
      `--kubeconfig=${admin}`, '--leader-elect=false', '--secure-port=0', `--root-ca-file=${paths.caBundle}`,
      `--service-account-private-key-file=${paths.serviceAccountKey}`, '--use-service-account-credentials=false',
      // Each node's pod range is set by hack/kubelet-node.sh, not allocated.
      '--controllers=*,-nodeipam',
    ]],
    ['kube-scheduler', [`--kubeconfig=${admin}`, '--leader-elect=false', '--secure-port=0']],
  ] as const) {
    const d = startDaemon({ name, executable: join(nodeBin, name), args: [...args], lifetime: 'detached', logFile: join(cp.dir, `${name}.log`), pidFile: join(cp.dir, `${name}.pid`) });
    record.daemons.push({ pid: d.pid, executable: d.executable });
    save();
  }

  const nodes: KubeletCluster['nodes'] = [];
  for (const [i, name] of o.nodes.entries()) {
    say(`starting node ${name} (containerd, kubelet, kube-proxy) …`);
    const dir = nodeDirOf(o.dir, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'pause.ref'), `${pause.ref}\n`);
    // The host's image store (agent.hostDirs.images, /var/lib/vmove/images inside the node): the
    // sim driver's images are folders, and the examples' VMs boot "testguest".
    mkdirSync(join(dir, 'var-lib-vmove', 'images', 'testguest'), { recursive: true });
    const address = lines(await hack('kubelet-node.sh', 'up', String(o.net), name, String(i + 1), dir, cp.dir, nodeBin)).pop()!;
    nodes.push({ name, address });
  }
  await waitNodesReady(admin, o.nodes);

  const helm = (args: string[]): Promise<string> => run(helmBin, [...args, '--kubeconfig', admin], 10 * 60_000);
  const [repository, tag] = splitRef(image.ref);
  say(`helm install vmove charts/vmove (image ${image.ref}) …`);
  await helm([
    'install', 'vmove', repoPath('charts', 'vmove'), '--namespace', NAMESPACE, '--create-namespace', '--wait', '--timeout', '5m',
    ...chartValues(repository, tag, o.net).flatMap((v) => ['--set', v]),
  ]);
  return { dir: o.dir, kubeconfig: admin, server: cp.server, nodes, image: image.ref, helm };
}

/** The chart's values for this set-up: the image as imported, and the nodes' network. */
function chartValues(repository: string, tag: string, net: number): string[] {
  return [
    `image.repository=${repository}`,
    `image.tag=${tag}`,
    // Imported into each node's containerd; there is no registry to pull from.
    'image.pullPolicy=Never',
    `networkPolicy.nodeCIDRs={10.213.${net}.0/24}`,
    // hostDirs.shared is one folder every node mounts (hack/kubelet-node.sh).
    'agent.storage={Local,SharedFile}',
  ];
}

function splitRef(ref: string): [string, string] {
  const at = ref.lastIndexOf(':');
  return [ref.slice(0, at), ref.slice(at + 1)];
}

async function waitNodesReady(kubeconfig: string, nodes: string[], timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await kubectl(kubeconfig, ['get', 'nodes', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}']);
    const ready = new Set(r.stdout.split(' ').filter((x) => x.endsWith('=True')).map((x) => x.split('=')[0]));
    if (nodes.every((n) => ready.has(n))) return;
    if (Date.now() > deadline) throw new Error(`nodes not Ready after ${timeoutMs / 1000} s: ${r.stdout || r.stderr}`);
    await sleep(1000);
  }
}

/** Stops the nodes, kube-controller-manager, kube-scheduler and the control plane; leaves no process, mount, netns or veth. */
export async function stopKubeletCluster(dir: string): Promise<boolean> {
  if (!existsSync(recordFile(dir))) return false;
  const record = JSON.parse(readFileSync(recordFile(dir), 'utf8')) as Recorded;
  for (const [i, name] of record.nodes.entries()) {
    await hack('kubelet-node.sh', 'down', String(record.net), name, String(i + 1), nodeDirOf(dir, name));
  }
  for (const d of record.daemons) await stopDaemon(d.pid, d.executable, 5000);
  await stopInstance(clusterDirOf(dir));
  await hack('kubelet-node.sh', 'bridge-down', String(record.net));
  rmSync(join(dir, 'nodes'), { recursive: true, force: true });
  rmSync(recordFile(dir), { force: true });
  return true;
}
