// The control plane every integration and e2e test runs against: a real etcd and
// kube-apiserver per call, in its own temp folder on its own free ports, with vmove's CRDs
// and RBAC installed. Processes die with the test process even when it is killed.
import { KubeConfig } from '@kubernetes/client-node';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/cluster/controlPlane';
import type { Tokens } from '../../src/cluster/credentials';
import { kubectl, type KubectlOptions, type KubectlResult } from '../../src/cluster/kubectl';
import { sweepOrphans } from '../../src/cluster/sweep';

export interface TestCluster {
  dir: string;
  server: string;
  /** Admin (system:masters). */
  kubeconfig: string;
  controllerKubeconfig: string;
  agentKubeconfig: string;
  /** Bearer tokens of the three identities (e.g. to call an agent as the controller). */
  tokens: Tokens;
  /** PEM bundle that verifies the API server's certificate. */
  caPem: string;
  /** The vmove CA of the agents' certificates (src/cluster/agentPki.ts). */
  agentPkiDir: string;
  pids: ControlPlane['pids'];
  /** kubectl as admin; resolves with the exit code, never throws for a non-zero one. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<KubectlResult>;
  /** Admin KubeConfig loaded from the kubeconfig file. */
  kubeClient(): KubeConfig;
  stop(): Promise<void>;
}

export interface TestClusterOptions {
  /** Install crds/*.yaml (default true). */
  crds?: boolean;
  /** Install config/rbac/*.yaml (default true). */
  rbac?: boolean;
}

/** A cold start takes a few seconds; give beforeAll this much. */
export const CLUSTER_START_TIMEOUT_MS = 120_000;

const BASE_DIR = join(tmpdir(), 'vmove-test-clusters');
const PREFIX = 'cp-';

const running = new Set<TestCluster>();
let hooked = false;

// Jest has no global "after everything" inside a test file; afterAll at module level runs
// once the file's tests are done, whichever file imported this module.
function hookJestTeardown(): void {
  if (hooked) return;
  hooked = true;
  const g = globalThis as { afterAll?: (fn: () => Promise<void>, timeout?: number) => void };
  g.afterAll?.(async () => {
    await Promise.all([...running].map((c) => c.stop()));
  }, 60_000);
}
hookJestTeardown();

export async function startTestCluster(opts: TestClusterOptions = {}): Promise<TestCluster> {
  mkdirSync(BASE_DIR, { recursive: true });
  sweepOrphans(BASE_DIR, PREFIX);
  const dir = mkdtempSync(join(BASE_DIR, PREFIX));
  let cp: ControlPlane;
  try {
    cp = await startControlPlane({ dir, lifetime: 'parent', crds: opts.crds ?? true, rbac: opts.rbac ?? true });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let stopping: Promise<void> | undefined;
  const cluster: TestCluster = {
    dir,
    server: cp.server,
    kubeconfig: cp.kubeconfigs.admin,
    controllerKubeconfig: cp.kubeconfigs.controller,
    agentKubeconfig: cp.kubeconfigs.agent,
    tokens: cp.tokens,
    caPem: cp.caPem,
    agentPkiDir: cp.agentPkiDir,
    pids: cp.pids,
    kubectl: (args, kopts) => kubectl(cp.kubeconfigs.admin, args, kopts),
    kubeClient: () => {
      const kc = new KubeConfig();
      kc.loadFromFile(cp.kubeconfigs.admin);
      return kc;
    },
    stop: () =>
      (stopping ??= (async () => {
        running.delete(cluster);
        await cp.stop();
        rmSync(dir, { recursive: true, force: true });
      })()),
  };
  running.add(cluster);
  return cluster;
}
