// The API server and namespace a command speaks to, as kubectl would pick them: --kubeconfig or
// $KUBECONFIG or ~/.kube/config, --context or the current one, -n or the context's namespace.
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi } from '../kube/api';
import type { Target } from './args';
import { BadInput } from './errors';

export interface Connection {
  api: KubeApi;
  /** The namespace named objects live in (-A leaves it for the watch to ignore). */
  namespace: string;
  context: string;
}

export async function connect(t: Target): Promise<Connection> {
  const kc = new KubeConfig();
  try {
    if (t.kubeconfig) kc.loadFromFile(t.kubeconfig);
    else kc.loadFromDefault();
  } catch (e) {
    throw new BadInput(`cannot read the kubeconfig${t.kubeconfig ? ` ${t.kubeconfig}` : ''}: ${(e as Error).message}`);
  }
  if (t.context) {
    if (!kc.getContextObject(t.context)) throw new BadInput(`context "${t.context}" not found in the kubeconfig (have: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})`);
    kc.setCurrentContext(t.context);
  }
  const context = kc.getCurrentContext();
  const namespace = t.namespace ?? kc.getContextObject(context)?.namespace ?? 'default';
  return { api: await KubeApi.fromKubeConfig(kc), namespace, context };
}
