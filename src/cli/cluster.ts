// `vmove cluster up|down|status|kubeconfig`: the local control plane behind `make cluster`.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { probeInstance } from '../cluster/controlPlane';
import { IDENTITY_NAMES, type IdentityName } from '../cluster/identities';
import { clusterDown, clusterUp, defaultClusterDir } from '../cluster/localCluster';
import { instancePaths } from '../cluster/state';
import { kubeletDemoDir, stopKubeletCluster } from '../local/kubeletCluster';

const USAGE = `usage: vmove cluster <up|down|status|kubeconfig> [--dir DIR]

  up          start the local control plane (etcd + kube-apiserver on loopback), or reuse the
              running one; apply the CRDs (crds/) and RBAC (config/rbac/)
                --no-crds, --no-rbac   skip those manifests
  down        stop it and remove its state
  status      is it running? (exit 0 when ready, 1 otherwise)
  kubeconfig  print the kubeconfig path to use
                --identity admin|controller|agent   (default admin)

  --dir DIR   instance folder (default: $VMOVE_CLUSTER_DIR or <checkout>/.cache/cluster)
`;

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const out = (line: string): void => void process.stdout.write(`${line}\n`);

export async function clusterCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      'no-crds': { type: 'boolean', default: false },
      'no-rbac': { type: 'boolean', default: false },
      identity: { type: 'string', default: 'admin' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [action, ...extra] = positionals;
  if (values.help) {
    out(USAGE.trimEnd());
    return 0;
  }
  if (!action || extra.length > 0) {
    process.stderr.write(USAGE);
    return 2;
  }
  const dir = values.dir ?? defaultClusterDir();

  switch (action) {
    case 'up': {
      const t0 = Date.now();
      const r = await clusterUp(dir, { crds: !values['no-crds'], rbac: !values['no-rbac'] });
      if (r.decision.action === 'reuse') {
        out(`control plane already running at ${r.server}; manifests re-applied in ${seconds(r.manifestsMs)}`);
      } else {
        if (r.decision.action === 'restart') out(`replaced a stale control plane (${r.decision.reason})`);
        const t = r.timings;
        const phases = t
          ? ` (binaries ${seconds(t.binariesMs)}, etcd ${seconds(t.etcdMs)}, kube-apiserver ${seconds(t.apiserverMs)}, manifests ${seconds(t.manifestsMs)})`
          : '';
        out(`control plane ready at ${r.server} in ${seconds(Date.now() - t0)}${phases}`);
      }
      out(`export KUBECONFIG=${r.adminKubeconfig}`);
      return 0;
    }
    case 'down': {
      const t0 = Date.now();
      // `make run RUNTIME=kubelet`'s nodes and control plane, when they run.
      if (await stopKubeletCluster(kubeletDemoDir())) out('kubelet nodes and their control plane stopped');
      const had = await clusterDown(dir);
      out(had ? `control plane stopped in ${seconds(Date.now() - t0)}` : `no control plane in ${dir}`);
      return 0;
    }
    case 'status': {
      const h = await probeInstance(dir);
      if (!h.state) {
        out(`not running (no control plane in ${dir})`);
        return 1;
      }
      const procs = `etcd ${h.etcdRunning ? `pid ${h.state.etcd?.pid}` : 'down'}, kube-apiserver ${h.apiserverRunning ? `pid ${h.state.kubeApiserver?.pid}` : 'down'}`;
      out(`${h.ready ? 'ready' : 'not ready'}: ${h.state.server ?? '(no server yet)'} (${procs})`);
      if (h.ready) out(`export KUBECONFIG=${instancePaths(dir).kubeconfigs.admin}`);
      return h.ready ? 0 : 1;
    }
    case 'kubeconfig': {
      const identity = values.identity as IdentityName;
      if (!IDENTITY_NAMES.includes(identity)) {
        process.stderr.write(`vmove cluster kubeconfig: --identity must be one of ${IDENTITY_NAMES.join(', ')}\n`);
        return 2;
      }
      const file = instancePaths(dir).kubeconfigs[identity];
      if (!existsSync(file)) {
        process.stderr.write(`vmove cluster kubeconfig: no control plane in ${dir}; run \`make cluster\` first\n`);
        return 1;
      }
      out(file);
      return 0;
    }
    default:
      process.stderr.write(`vmove cluster: unknown action "${action}"\n\n${USAGE}`);
      return 2;
  }
}
