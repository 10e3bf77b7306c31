// `vmove demo` (what `make run` runs): the local control plane (unless --kubeconfig points at a
// cluster), the CRDs and RBAC, the controller, three demo nodes with one agent each, and two demo
// VMs — with readable logs — so a user can `kubectl apply` a move and watch it. With the qemu or
// libvirt driver the VMs are real guests (vmove's test guest kit under TCG; libvirt nodes run a
// private libvirtd each); Ctrl-C ends them with the agents.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { clusterUp, defaultClusterDir } from '../cluster/localCluster';
import { kubectlOrThrow } from '../cluster/kubectl';
import { repoPath } from '../cluster/repo';
import { instancePaths } from '../cluster/state';
import { isDriverKind } from '../drivers/registry';
import { KubeApi } from '../kube/api';
import { LocalFleet } from '../local/fleet';
import { guestKitImagesDir } from '../local/guestKit';
import { kubeletDemoDir, startKubeletCluster } from '../local/kubeletCluster';

const USAGE = `usage: vmove demo [--driver sim|qemu|libvirt] [--runtime processes|kubelet] [--nodes node-a,node-b,node-c] [--no-vms] [--dir DIR] [--metrics-address ADDR]

Starts (or reuses) the local control plane, installs the CRDs and RBAC, runs the controller and
one agent per demo node, and creates the demo VMs from examples/. With --driver qemu or libvirt
the VMs are real guests (hack/build-guest.sh's kit under TCG). Ctrl-C stops the controller, the
agents and their guests; the control plane keeps running (make cluster-down stops it).

  --dir DIR   the demo hosts' folder (default <checkout>/.cache/demo); the control plane's is
              $VMOVE_CLUSTER_DIR or <checkout>/.cache/cluster
  --metrics-address ADDR  where the controller serves /metrics (default 127.0.0.1:8080)
  --runtime kubelet  instead of local processes: two real kubelet nodes (node-a, node-b) and
              vmove installed on them with \`helm install\` of charts/vmove, from the image
              built here (make image); sim driver; make cluster-down stops all of it
`;

const say = (line = ''): void => void process.stdout.write(`${line}\n`);

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      driver: { type: 'string', default: process.env.DRIVER ?? 'sim' },
      runtime: { type: 'string', default: process.env.RUNTIME ?? 'processes' },
      nodes: { type: 'string', default: 'node-a,node-b,node-c' },
      'no-vms': { type: 'boolean', default: false },
      dir: { type: 'string' },
      'metrics-address': { type: 'string', default: '127.0.0.1:8080' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    say(USAGE);
    return 0;
  }
  const driver = values.driver!;
  if (!isDriverKind(driver)) {
    process.stderr.write(`vmove demo: unknown driver "${driver}" (sim, qemu or libvirt)\n`);
    return 2;
  }
  if (values.runtime === 'kubelet') return kubeletDemo(driver, !values['no-vms']);
  if (values.runtime !== 'processes') {
    process.stderr.write(`vmove demo: unknown runtime "${values.runtime}" (processes or kubelet)\n`);
    return 2;
  }
  const clusterDir = defaultClusterDir();
  say(`starting the local control plane in ${path.relative(process.cwd(), clusterDir) || clusterDir} …`);
  const up = await clusterUp(clusterDir, { crds: true, rbac: true });
  const kc = instancePaths(clusterDir).kubeconfigs;
  const api = await KubeApi.fromFile(kc.admin);
  const demoDir = path.resolve(values.dir ?? repoPath('.cache', 'demo'));
  mkdirSync(demoDir, { recursive: true });
  // The hosts' state belongs to the driver that made it and to the control plane whose VMs it
  // holds: with another driver, or a new control plane (after `make cluster-down`), the hosts start
  // empty — their old copies would otherwise stand in the way of the demo VMs created again.
  const ownerFile = path.join(demoDir, 'driver');
  const cluster = (await api.find<{ metadata: { uid: string } }>('/api/v1/namespaces/kube-system'))?.metadata.uid ?? '';
  // Hosts from before the demo recorded its owner ran the sim driver, for an unknown control plane.
  const [previous = 'sim', previousCluster = ''] = existsSync(ownerFile) ? readFileSync(ownerFile, 'utf8').trim().split(' ') : [];
  const hadHosts = existsSync(path.join(demoDir, 'nodes'));
  const switched = hadHosts && previous !== driver;
  if (hadHosts && (switched || previousCluster !== cluster)) {
    say(switched ? `the demo ran the ${previous} driver before: starting the ${driver} hosts empty` : 'a new control plane: starting the demo hosts empty');
    for (const d of ['nodes', 'shared']) rmSync(path.join(demoDir, d), { recursive: true, force: true });
  }
  const imagesDir = driver === 'sim' ? undefined : guestKitImagesDir();
  const fleet = new LocalFleet(api, { dir: demoDir, controllerKubeconfig: kc.controller, agentKubeconfig: kc.agent, echo: process.stdout, ...(imagesDir ? { imagesDir } : {}) }, { driver });

  const zones = ['east', 'west', 'west'];
  const nodes = values.nodes!.split(',').filter(Boolean);
  for (const [i, node] of nodes.entries()) await fleet.addNode(node, { labels: { 'topology.kubernetes.io/zone': zones[i % zones.length]! } });
  fleet.startController(['--metrics-address', values['metrics-address']!]);

  const demoVms = ['vm-shared.yaml', 'vm-local.yaml'].map((f) => repoPath('examples', f)).filter((f) => existsSync(f));
  if (switched) {
    say('deleting the demo VMs of the previous driver …');
    await kubectlOrThrow(kc.admin, ['delete', '--ignore-not-found', '--wait=true', '--timeout=120s', ...demoVms.flatMap((f) => ['-f', f])]);
  }
  writeFileSync(ownerFile, `${driver} ${cluster}\n`);
  if (!values['no-vms']) {
    for (const file of demoVms) await kubectlOrThrow(kc.admin, ['apply', '-f', file]);
  }

  say('');
  say(`vmove is running (${driver} driver, nodes ${nodes.join(', ')}; API server ${up.server}).`);
  say('In another shell:');
  say(`  export KUBECONFIG=${kc.admin}`);
  say('  kubectl get vmv,nodes');
  say('  kubectl apply -f examples/move-live.yaml && kubectl get moverequests -w');
  say(`  curl -s http://${values['metrics-address']}/metrics | grep vmove_move_   # the move's metrics (docs/metrics.md)`);
  say(`  export PATH=${repoPath('bin')}:$PATH   # then: kubectl vmove move web --to node-b --watch`);
  if (driver !== 'sim') say(`  tail -f ${path.relative(process.cwd(), demoDir) || demoDir}/nodes/*/state/${driver}/vms/default_web/serial.log   # the guest's console`);
  say('Ctrl-C stops the controller, the agents and their guests (make cluster-down stops the control plane).');
  say('');

  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  say('stopping the controller and agents …');
  await fleet.stop();
  api.close();
  return 0;
}

/** `make run RUNTIME=kubelet`: the chart's pods on two real kubelet nodes (src/local/kubeletCluster.ts). */
async function kubeletDemo(driver: string, vms: boolean): Promise<number> {
  if (driver !== 'sim') {
    process.stderr.write('vmove demo: --runtime kubelet runs the sim driver (the qemu driver needs a privileged agent pod with QEMU\'s devices; not set up here)\n');
    return 2;
  }
  const t0 = Date.now();
  const c = await startKubeletCluster({ dir: kubeletDemoDir(), nodes: ['node-a', 'node-b'], net: 0, say });
  if (vms) await kubectlOrThrow(c.kubeconfig, ['apply', '-f', repoPath('examples', 'vm-shared.yaml')]);
  say('');
  say(`vmove is running as the Helm chart's pods on kubelet nodes ${c.nodes.map((n) => `${n.name} (${n.address})`).join(', ')} (sim driver, image ${c.image}; API server ${c.server}; ready in ${((Date.now() - t0) / 1000).toFixed(0)} s).`);
  say('In another shell:');
  say(`  export KUBECONFIG=${c.kubeconfig}`);
  say('  kubectl get nodes,vmv; kubectl -n vmove-system get pods -o wide');
  say('  kubectl apply -f examples/move-live.yaml && kubectl get moverequests -w');
  say(`  export PATH=${repoPath('bin')}:$PATH   # then: kubectl vmove move web --to node-a --watch`);
  say('make cluster-down stops the nodes, their pods and the control plane.');
  return 0;
}
