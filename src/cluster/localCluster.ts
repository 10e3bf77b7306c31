// The developer's long-lived control plane behind `make cluster` / `vmove cluster up`:
// one instance in a git-ignored folder of the checkout, detached from the command that
// started it, reused while healthy and replaced when stale.
import { rmSync } from 'node:fs';
import { attachControlPlane, probeInstance, startControlPlane, stopInstance, type StartTimings } from './controlPlane';
import { withFolderLock } from './folderLock';
import { installVmoveManifests } from './manifests';
import { repoPath } from './repo';
import { instancePaths } from './state';
import { decideUp, type UpDecision } from './upDecision';

export const defaultClusterDir = (): string => process.env.VMOVE_CLUSTER_DIR ?? repoPath('.cache', 'cluster');

/** Long enough for a first-time build of kube-apiserver and etcd by another `up`. */
const LOCK_TIMEOUT_MS = 15 * 60_000;

export interface UpResult {
  decision: UpDecision;
  server: string;
  adminKubeconfig: string;
  /** Start phases when this call started the control plane. */
  timings?: StartTimings;
  manifestsMs: number;
}

export async function clusterUp(dir: string, opts: { crds: boolean; rbac: boolean }): Promise<UpResult> {
  return withFolderLock(dir, LOCK_TIMEOUT_MS, async () => {
    const health = await probeInstance(dir);
    const decision = decideUp({ recorded: !!health.state, ...health });
    if (decision.action === 'reuse') {
      const cp = attachControlPlane(dir);
      if (cp) {
        // Re-apply: the manifests in the checkout may have changed since the last `up`.
        const t0 = Date.now();
        await installVmoveManifests(cp.kubeconfigs, opts);
        return { decision, server: cp.server, adminKubeconfig: cp.kubeconfigs.admin, manifestsMs: Date.now() - t0 };
      }
    }
    if (decision.action !== 'start') await stopInstance(dir); // stale, or unreadable credentials
    const cp = await startControlPlane({ dir, lifetime: 'detached', ...opts });
    return {
      decision,
      server: cp.server,
      adminKubeconfig: cp.kubeconfigs.admin,
      ...(cp.timings ? { timings: cp.timings, manifestsMs: cp.timings.manifestsMs } : { manifestsMs: 0 }),
    };
  });
}

/** Stops the instance and removes its folder (etcd data included). Returns whether one was recorded. */
export async function clusterDown(dir: string): Promise<boolean> {
  return withFolderLock(dir, LOCK_TIMEOUT_MS, async () => {
    const recorded = (await probeInstance(dir)).state !== undefined;
    await stopInstance(dir);
    for (const p of Object.values(instancePaths(dir))) {
      if (typeof p === 'string' && p !== dir) rmSync(p, { recursive: true, force: true });
    }
    for (const p of Object.values(instancePaths(dir).kubeconfigs)) rmSync(p, { force: true });
    return recorded;
  });
}
