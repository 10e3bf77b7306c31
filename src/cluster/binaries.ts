// Locates kube-apiserver and etcd through hack/build-control-plane.sh, which reuses
// KUBEBUILDER_ASSETS or its cache and builds them from Go modules otherwise.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { repoPath } from './repo';

export interface ControlPlaneBinaries {
  dir: string;
  etcd: string;
  kubeApiserver: string;
}

let located: Promise<ControlPlaneBinaries> | undefined;

/** Resolved once per process; a first build takes minutes, later calls are instant. */
export function controlPlaneBinaries(): Promise<ControlPlaneBinaries> {
  located ??= buildOrFind().catch((err: unknown) => {
    located = undefined; // let a later call retry (e.g. after Go was installed)
    throw err;
  });
  return located;
}

function buildOrFind(): Promise<ControlPlaneBinaries> {
  const script = repoPath('hack', 'build-control-plane.sh');
  return new Promise((resolve, reject) => {
    execFile('bash', [script], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        // The script explains itself on stderr (e.g. no Go toolchain and no KUBEBUILDER_ASSETS).
        const said = stderr.trim().split('\n').slice(-20).join('\n');
        reject(new Error(`cannot get kube-apiserver and etcd (${script} failed):\n${said || err.message}`));
        return;
      }
      const dir = stdout.trim().split('\n').pop() ?? '';
      resolve({ dir, etcd: join(dir, 'etcd'), kubeApiserver: join(dir, 'kube-apiserver') });
    });
  });
}
