// A dedicated migration network on one machine: each agent serves its API on 127.0.0.1 and
// receives migrations on an address of its own (node-a 127.0.0.2, node-b 127.0.0.3), as a host
// with a storage/migration NIC would. A live block migration (memory and NBD disk streams) must
// go to the target's migration address — seen in the sockets QEMU held while it ran — and only
// the API calls stay on 127.0.0.1. The nodes' certificates name the node and its API address,
// not the migration address (as the chart issues them), so TLS checks the target by its name.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { OperationRecord } from '../../../src/agent/operations';
import { RealStack } from '../../support/e2eFleet';
import { operationRecord } from '../../support/faults';
import { endpointOf, sampleConnections } from '../../support/tcpConnections';

jest.setTimeout(300_000);

const MIGRATION_ADDRESS = { 'node-a': '127.0.0.2', 'node-b': '127.0.0.3' };
let stack: RealStack;

beforeAll(async () => {
  stack = await RealStack.start('qemu', Object.entries(MIGRATION_ADDRESS).map(([name, migrationAddress]) => ({ name, migrationAddress })));
}, 180_000);

afterAll(() => stack?.stop(), 120_000);

const record = (node: string, opId: string): OperationRecord => {
  const r = operationRecord(stack.env, node, opId);
  if (!r) throw new Error(`no operation ${opId} on ${node}`);
  return r;
};

test('a live block migration streams memory and disk to the target\'s migration address, over TLS checked by node name', async () => {
  const to = stack.env.fleet.nodes.get('node-b')!.host.migrationPorts;
  const onTargetPorts = (port: number) => port >= to[0] && port <= to[1];
  const certificate = execFileSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', join(stack.env.fleet.nodes.get('node-b')!.tlsDir, 'server-cert.pem')], { encoding: 'utf8' });
  expect(certificate).toContain('DNS:node-b');
  expect(certificate).not.toContain('127.0.0.3');

  await stack.createVm('db', 'node-a', { storage: 'Local', kernelArgs: 'vmove.disk_counter=1 vmove.dirty_mib=16' });
  const sockets = sampleConnections(onTargetPorts);
  // Over TLS on this machine the streams last a second or more: long enough for a 50 ms sampler.
  const { mr, onSource, target } = await stack.watchedMove('db-net', 'db', 'node-a', 'node-b', { mode: 'Live', target: { nodeName: 'node-b' } });
  const seen = await sockets.stop();
  stack.ended(mr, 'Succeeded');
  expect(mr.status).toMatchObject({ moveType: 'Live', variant: 'BlockMigration', sourceNode: 'node-a', targetNode: 'node-b' });

  // What the target offered and the source used: its migration address, TLS, its node name.
  const uid = mr.metadata.uid!;
  const endpoint = record('node-b', `${uid}.${mr.status!.attempt}.preparing-target`).status.endpoint!;
  expect(endpoint).toMatchObject({ migrationUri: expect.stringMatching(/^tcp:127\.0\.0\.3:\d+$/), tls: true, tlsName: 'node-b', nbd: { host: '127.0.0.3' } });
  expect(record('node-a', `${uid}.${mr.status!.attempt}.migrating`).status.migration?.tls).toBe(true);

  // The sockets: the source QEMU's connections to the migration and NBD ports, all at 127.0.0.3.
  const toTarget = seen.filter((c) => onTargetPorts(endpointOf(c.peer).port) && c.process.startsWith('qemu'));
  const ports = new Set(toTarget.map((c) => endpointOf(c.peer).port));
  expect({ memory: ports.has(endpointOf(endpoint.migrationUri.slice(4)).port), disk: ports.has(endpoint.nbd!.port) }).toEqual({ memory: true, disk: true });
  expect([...new Set(seen.flatMap((c) => [c.local, c.peer]).map(endpointOf).filter((e) => onTargetPorts(e.port)).map((e) => e.address))]).toEqual(['127.0.0.3']);
  // The agents' API is where it was: both advertise https://127.0.0.1 on their Leases.
  for (const node of ['node-a', 'node-b']) {
    const lease = await stack.env.kubectl(['get', 'lease', '-n', 'vmove-system', `vmove-agent-${node}`, '-o', 'jsonpath={.metadata.annotations.vmove\\.dev/endpoint}']);
    expect(lease.stdout).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  }

  const beats = await stack.ranOnAcross(onSource, target, 'db');
  expect(beats.at(-1)!.disk - beats[0]!.disk).toBe(beats.at(-1)!.n - beats[0]!.n);
  await stack.runsOnlyOn('db', 'node-b');
});
