// Installs vmove's manifests into a control plane with the real `kubectl apply`: the
// vmove-system namespace, whatever CRDs crds/ holds, and the RBAC in config/rbac/.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SYSTEM_NAMESPACE, type IdentityName } from './identities';
import { kubectl, kubectlOrThrow } from './kubectl';
import { repoPath } from './repo';
import { setTimeout as sleep } from 'node:timers/promises';

export const CRD_DIR = repoPath('crds');
export const RBAC_DIR = repoPath('config', 'rbac');

/** The *.yaml / *.yml files of a folder, sorted; none when the folder does not exist. */
export function manifestFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => /\.ya?ml$/.test(n)).sort().map((n) => join(dir, n));
}

const namespaceManifest = (name: string): string =>
  `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n  labels:\n    app.kubernetes.io/part-of: vmove\n`;

export interface InstallOptions {
  /** Apply crds/*.yaml and wait until they are Established. */
  crds: boolean;
  /** Apply config/rbac/*.yaml and wait until the bindings are in force. */
  rbac: boolean;
  crdDir?: string;
  rbacDir?: string;
}

/** Namespace vmove-system, then the CRDs and RBAC asked for. Idempotent: re-running updates them. */
export async function installVmoveManifests(kubeconfigs: Record<IdentityName, string>, opts: InstallOptions): Promise<void> {
  await installManifests(kubeconfigs.admin, {
    crdFiles: opts.crds ? manifestFiles(opts.crdDir ?? CRD_DIR) : [],
    rbacFiles: opts.rbac ? manifestFiles(opts.rbacDir ?? RBAC_DIR) : [],
  });
  if (opts.rbac) {
    await Promise.all([
      waitForAccess(kubeconfigs.controller, 'update', 'leases.coordination.k8s.io', SYSTEM_NAMESPACE),
      waitForAccess(kubeconfigs.agent, 'update', 'leases.coordination.k8s.io', SYSTEM_NAMESPACE),
    ]);
  }
}

async function installManifests(adminKubeconfig: string, opts: { crdFiles: string[]; rbacFiles: string[] }): Promise<void> {
  // Server-side apply: no last-applied annotation, so large CRD schemas never hit its size limit.
  const apply = ['apply', '--server-side', '--force-conflicts', '--field-manager=vmove-cluster'];
  await kubectlOrThrow(adminKubeconfig, [...apply, '-f', '-'], { input: namespaceManifest(SYSTEM_NAMESPACE) });
  const files = [...opts.crdFiles, ...opts.rbacFiles];
  if (files.length > 0) await kubectlOrThrow(adminKubeconfig, [...apply, ...files.flatMap((f) => ['-f', f])]);
  if (opts.crdFiles.length > 0) {
    await kubectlOrThrow(adminKubeconfig, [
      'wait', '--for=condition=Established', '--timeout=60s', ...opts.crdFiles.flatMap((f) => ['-f', f]),
    ]);
  }
}

/**
 * Waits until the API server's RBAC authorizer has seen the new bindings (it works from an
 * informer cache, so a request right after `apply` may still be denied).
 */
async function waitForAccess(kubeconfig: string, verb: string, resource: string, namespace: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await kubectl(kubeconfig, ['auth', 'can-i', verb, resource, '-n', namespace]);
    if (r.code === 0 && r.stdout.trim() === 'yes') return;
    if (Date.now() > deadline) {
      throw new Error(`RBAC not effective after ${timeoutMs} ms: cannot ${verb} ${resource} in ${namespace} (${r.stdout.trim()} ${r.stderr.trim()})`);
    }
    await sleep(100);
  }
}
