// What sigs.k8s.io/cli-utils' kstatus library — the one Flux's health checks use — computes for
// objects, by hack/kstatus (built on first use, cached). `InProgress` keeps a Flux Kustomization
// with `wait: true` waiting; `Current` and `Failed` end its wait.
import { goToolPath, run } from './hackTools';

export type KstatusStatus = 'InProgress' | 'Failed' | 'Current' | 'Terminating' | 'NotFound' | 'Unknown';

export interface KstatusVerdict {
  kind: string;
  namespace?: string;
  name: string;
  status: KstatusStatus;
  message: string;
}

/** kstatus's verdict on each object of the files (YAML or JSON; several documents or a List each), in order. */
export function kstatusOfFiles(files: string[]): KstatusVerdict[] {
  return verdicts(run(goToolPath('kstatus'), files));
}

/** kstatus's verdict on each object given. */
export function kstatusOf(objects: unknown[]): KstatusVerdict[] {
  return verdicts(run(goToolPath('kstatus'), [], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) }));
}

function verdicts(r: { code: number; stdout: string; stderr: string }): KstatusVerdict[] {
  if (r.code !== 0) throw new Error(`hack/kstatus failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as KstatusVerdict);
}
