// Kubeconfig files for the local control plane: one per identity, all trusting the
// serving certificate bundle kube-apiserver generated in its --cert-dir.
import { stringify } from 'yaml';

export interface KubeconfigInput {
  clusterName: string;
  server: string;
  /** PEM bundle to trust (kube-apiserver's self-signed serving cert and its CA). */
  caPem: string;
  user: string;
  token: string;
}

export function renderKubeconfig(input: KubeconfigInput): string {
  const context = `${input.user}@${input.clusterName}`;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: input.clusterName,
        cluster: {
          server: input.server,
          'certificate-authority-data': Buffer.from(input.caPem).toString('base64'),
        },
      },
    ],
    users: [{ name: input.user, user: { token: input.token } }],
    contexts: [{ name: context, context: { cluster: input.clusterName, user: input.user } }],
    'current-context': context,
  });
}
