// TLS credentials of a migration: the target's QEMU serves its stream and NBD exports with the
// server object, the source's connects with the client object (both from the host's tlsDir).
import type { QmpClient } from './qmp';

export const TLS_SERVER = 'vmove-tls-server';
export const TLS_CLIENT = 'vmove-tls-client';

/** Adds the credentials object to the VM's QEMU unless it has it already. */
export async function addTlsCreds(qmp: QmpClient, tlsDir: string | undefined, endpoint: 'server' | 'client'): Promise<void> {
  const id = endpoint === 'server' ? TLS_SERVER : TLS_CLIENT;
  const objects = await qmp.execute<{ name: string }[]>('qom-list', { path: '/objects' });
  if (objects.some((o) => o.name === id)) return;
  await qmp.execute('object-add', { 'qom-type': 'tls-creds-x509', id, dir: tlsDir, endpoint, 'verify-peer': true });
}
