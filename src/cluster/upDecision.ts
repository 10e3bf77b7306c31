// What `vmove cluster up` does with whatever its folder holds. Pure: the caller probes.
export interface ObservedInstance {
  /** A state file exists (the folder held an instance at some point). */
  recorded: boolean;
  etcdRunning: boolean;
  apiserverRunning: boolean;
  /** /readyz answered 200. */
  ready: boolean;
}

export type UpDecision =
  | { action: 'start' }
  | { action: 'reuse' }
  | { action: 'restart'; reason: string };

export function decideUp(o: ObservedInstance): UpDecision {
  if (!o.recorded) return { action: 'start' };
  if (o.etcdRunning && o.apiserverRunning && o.ready) return { action: 'reuse' };
  const down = [!o.etcdRunning && 'etcd is not running', !o.apiserverRunning && 'kube-apiserver is not running'].filter(
    (s): s is string => typeof s === 'string',
  );
  return { action: 'restart', reason: down.length > 0 ? down.join(', ') : 'kube-apiserver is not ready' };
}
