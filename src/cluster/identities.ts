// The identities of the local control plane. Each gets a static bearer token, so TokenReview
// against the API server answers with exactly these names — the same names the chart's
// ServiceAccounts have in a real cluster, so RBAC and agent auth behave the same in both.

export const SYSTEM_NAMESPACE = 'vmove-system';

export type IdentityName = 'admin' | 'controller' | 'agent';
export const IDENTITY_NAMES: readonly IdentityName[] = ['admin', 'controller', 'agent'];

export interface Identity {
  username: string;
  uid: string;
  groups: string[];
}

const serviceAccount = (name: string): Identity => ({
  username: `system:serviceaccount:${SYSTEM_NAMESPACE}:${name}`,
  uid: `vmove-local-${name}`,
  groups: ['system:serviceaccounts', `system:serviceaccounts:${SYSTEM_NAMESPACE}`],
});

export const IDENTITIES: Readonly<Record<IdentityName, Identity>> = {
  admin: { username: 'vmove-admin', uid: 'vmove-local-admin', groups: ['system:masters'] },
  controller: serviceAccount('vmove-controller'),
  agent: serviceAccount('vmove-agent'),
};

export const CONTROLLER_USERNAME = IDENTITIES.controller.username;
export const AGENT_USERNAME = IDENTITIES.agent.username;
