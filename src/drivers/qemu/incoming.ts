// The target side of a live migration: a QEMU started with `-incoming defer -S` (paused until
// completeIncoming, as libvirt does), empty local disks exported over NBD for the source's mirror,
// and the run once the state has arrived. The driver calls these under the VM's lock.
import { readdir } from 'node:fs/promises';
import { componentLogger } from '../../log';
import type { IncomingEndpoint, MigrationTuning } from '../../protocol/migration';
import type { VmSpec } from '../../protocol/vm';
import { permanent } from '../common/errors';
import { uriHost } from '../common/uriHost';
import { createIncomingDisks, hasLocalDisks, requireBlockMigrationForLocalDisks } from '../common/vmDisks';
import { NotArrivedYet } from '../driver';
import { diskNode } from './commandLine';
import { parseLayout } from './machine';
import { type QueryMigrate, capabilityList, migrationState } from './migrationPlan';
import { vmsRoot } from './paths';
import { freePorts } from './ports';
import { QmpCommandError, ignoreQmp, type QmpClient } from './qmp';
import { bootLayoutOf, type QemuHost } from './qemuHost';
import { TLS_SERVER, addTlsCreds } from './tls';
import type { VmRecord } from './vmRecords';

const log = componentLogger('qemu-driver');

export async function prepareIncoming(q: QemuHost, vm: VmSpec, opts: { blockMigration: boolean; tuning?: MigrationTuning; plaintext?: boolean }): Promise<IncomingEndpoint> {
  const existing = await q.records.read(vm.id);
  if ((await q.vms.pid(vm.id)) !== undefined) {
    const status = await q.vms.runStatus(vm.id);
    if (existing?.incoming && (status === 'inmigrate' || status === 'prelaunch')) return existing.incoming.endpoint;
    if (status === 'running') throw permanent(`${vm.id} already runs on ${q.host.nodeName}`);
    await q.vms.kill(vm.id);
  }
  requireBlockMigrationForLocalDisks(vm, opts.blockMigration);
  await createIncomingDisks(q.host, vm, await q.records.diskFiles(vm));
  const layout = parseLayout(vm.machine) ?? bootLayoutOf(q, vm);
  const rec: VmRecord = { spec: vm, layout };
  await q.records.write(vm.id, rec);
  await q.vms.launch(rec, true);

  const qmp = q.vms.qmp(vm.id);
  const multifdChannels = opts.tuning?.multifdChannels ?? 0;
  const allowPostCopy = opts.tuning?.allowPostCopy !== false && multifdChannels === 0;
  const postCopy = allowPostCopy && (await trySetCapability(qmp, 'postcopy-ram'));
  await qmp.execute('migrate-set-capabilities', {
    capabilities: capabilityList({ postCopy, autoConverge: false, multifdChannels }),
  });
  // TLS whenever this host has certificates, unless the move asked for plaintext.
  const tls = q.settings.tlsDir !== undefined && opts.plaintext !== true;
  if (tls) await addTlsCreds(qmp, q.settings.tlsDir, 'server');
  await qmp.execute('migrate-set-parameters', {
    'tls-creds': tls ? TLS_SERVER : '',
    ...(multifdChannels > 0 ? { 'multifd-channels': multifdChannels } : {}),
  });

  const address = q.host.migrationAddress;
  const taken = await portsInUse(q);
  const [migrationPort, nbdPort] = await freePorts(address, q.host.migrationPorts, taken, opts.blockMigration ? 2 : 1);
  const endpoint: IncomingEndpoint = {
    migrationUri: `tcp:${uriHost(address)}:${migrationPort}`,
    tls,
    ...(tls ? { tlsName: q.host.nodeName } : {}),
    postCopy,
    multifdChannels,
  };
  const nbdExports: string[] = [];
  if (opts.blockMigration && hasLocalDisks(vm)) {
    await qmp.execute('nbd-server-start', {
      addr: { type: 'inet', data: { host: address, port: String(nbdPort) } },
      ...(tls ? { 'tls-creds': TLS_SERVER } : {}),
    });
    const exports: Record<string, string> = {};
    for (const [i, d] of vm.disks.entries()) {
      if (d.storage !== 'Local') continue;
      const exportId = `export-${diskNode(i)}`;
      await qmp.execute('block-export-add', { type: 'nbd', id: exportId, 'node-name': diskNode(i), name: d.name, writable: true });
      exports[d.name] = d.name;
      nbdExports.push(exportId);
    }
    endpoint.nbd = { host: address, port: nbdPort!, exports };
  }
  await qmp.execute('migrate-incoming', { uri: endpoint.migrationUri });
  await q.records.write(vm.id, { ...rec, incoming: { endpoint, blockMigration: opts.blockMigration, nbdExports } });
  log.info({ vm: vm.id, endpoint }, 'waiting for incoming migration');
  return endpoint;
}

export async function completeIncoming(q: QemuHost, id: string): Promise<void> {
  const rec = await q.records.require(id);
  if ((await q.vms.pid(id)) === undefined) throw permanent(`${id} has no QEMU process on ${q.host.nodeName}; the incoming migration failed`);
  const qmp = q.vms.qmp(id);
  const status = await q.vms.runStatus(id);
  if (status === 'running') return q.records.write(id, { spec: rec.spec, layout: rec.layout });
  const incoming = migrationState((await qmp.execute<QueryMigrate>('query-migrate')).status);
  if (status === 'inmigrate' || (incoming !== 'completed' && incoming !== 'postcopy')) {
    throw new NotArrivedYet(`the migration of ${id} has not completed on ${q.host.nodeName} yet`);
  }
  // Stopping the server ends its exports; the source has cancelled its mirrors by now.
  if (rec.incoming?.nbdExports.length) await qmp.execute('nbd-server-stop').catch(ignoreQmp);
  await qmp.execute('cont');
  await q.records.write(id, { spec: rec.spec, layout: rec.layout });
  log.info({ vm: id }, 'incoming VM runs');
}

/**
 * A target in post-copy must run now: its source has stopped for good. `cont` during an
 * incoming migration only marks the VM to start when the device state has arrived.
 */
export async function runPostCopyTarget(q: QemuHost, id: string): Promise<void> {
  const rec = await q.records.read(id);
  if (rec?.incoming) await q.vms.qmp(id).execute('cont');
}

async function trySetCapability(qmp: QmpClient, capability: string): Promise<boolean> {
  try {
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability, state: true }] });
    return true;
  } catch (err) {
    if (!(err instanceof QmpCommandError)) throw err;
    log.info({ capability, reason: err.desc }, 'migration capability unavailable on this host');
    return false;
  }
}

/** Ports already promised to incoming VMs of this host (their QEMU may not listen yet). */
async function portsInUse(q: QemuHost): Promise<Set<number>> {
  const taken = new Set<number>();
  let ids: string[] = [];
  try {
    ids = await readdir(vmsRoot(q.host));
  } catch {
    return taken;
  }
  for (const id of ids) {
    const ep = (await q.records.read(id))?.incoming?.endpoint;
    if (!ep) continue;
    const port = Number(ep.migrationUri.split(':').pop());
    if (Number.isInteger(port)) taken.add(port);
    if (ep.nbd) taken.add(ep.nbd.port);
  }
  return taken;
}
