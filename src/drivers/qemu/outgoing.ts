// The source side of a live migration, in QEMU's documented sequence: local disks are mirrored
// over NBD (blockdev-mirror to the target's nbd export, migrate once every mirror is ready, cancel
// the mirrors once the migration completed), and the stream may be TLS-protected. The state lives
// in the VM's record, so the steps are level-triggered and go on after an agent restart. The
// driver calls these under the VM's lock, but for migrationMayHaveEnded.
import { setTimeout as sleep } from 'node:timers/promises';
import { componentLogger } from '../../log';
import type { IncomingEndpoint, MigrationStatus, MigrationTuning } from '../../protocol/migration';
import { permanent, transient } from '../common/errors';
import { uriHost } from '../common/uriHost';
import { diskNode } from './commandLine';
import {
  type ArmedFeatures,
  type BlockJob,
  type QueryMigrate,
  capabilityList,
  diskProgress,
  migrationParameters,
  migrationState,
  toMigrationStatus,
} from './migrationPlan';
import { ignoreQmp, type QmpClient } from './qmp';
import type { QemuHost } from './qemuHost';
import { TLS_CLIENT, addTlsCreds } from './tls';
import type { Outgoing } from './vmRecords';

const log = componentLogger('qemu-driver');

const mirrorNode = (i: number): string => `mirror${i}`;

export async function startMigration(q: QemuHost, id: string, to: IncomingEndpoint, tuning: MigrationTuning, opts: { blockMigration: boolean }): Promise<void> {
  const rec = await q.records.require(id);
  if (to.tls && !q.settings.tlsDir) throw permanent(`the target of ${id} expects TLS but ${q.host.nodeName} has no certificates`);
  if ((await q.vms.pid(id)) === undefined) throw permanent(`${id} does not run on ${q.host.nodeName}`);
  const qmp = q.vms.qmp(id);
  const current = migrationState((await qmp.execute<QueryMigrate>('query-migrate')).status);
  if (rec.outgoing && sameEndpoint(rec.outgoing.endpoint, to) && current !== 'failed' && current !== 'cancelled') return;
  if (current === 'active' || current === 'setup' || current === 'postcopy') {
    throw permanent(`${id} is already migrating to another target`);
  }
  if ((await q.vms.runStatus(id)) !== 'running') throw permanent(`${id} is not running on ${q.host.nodeName}`);
  const local = rec.spec.disks.map((d, i) => ({ d, i })).filter(({ d }) => d.storage === 'Local');
  if (local.length > 0 && !opts.blockMigration) throw permanent(`${id} has local disks; only block migration can move them live`);
  if (opts.blockMigration && local.length > 0 && !to.nbd) throw permanent(`the target of ${id} offers no NBD export for its local disks`);

  const armed: ArmedFeatures = {
    postCopy: to.postCopy === true && tuning.allowPostCopy !== false && !opts.blockMigration,
    autoConverge: tuning.autoConverge || tuning.allowAutoConverge !== false,
    multifdChannels: to.multifdChannels ?? 0,
  };
  await qmp.execute('migrate-set-capabilities', { capabilities: capabilityList(armed) });
  const tls = to.tls === true;
  // The target's certificate names its node; older targets gave no name, so their address is checked.
  const tlsHost = to.tlsName ?? uriHost(hostOfUri(to.migrationUri)).replace(/^\[|\]$/g, '');
  if (tls) await addTlsCreds(qmp, q.settings.tlsDir, 'client');
  await qmp.execute('migrate-set-parameters', {
    ...migrationParameters(tuning, armed),
    'tls-creds': tls ? TLS_CLIENT : '',
    'tls-hostname': tls ? tlsHost : '',
  });

  const out: Outgoing = {
    endpoint: to,
    blockMigration: opts.blockMigration,
    armed,
    tuning,
    mirrored: [],
    migrateIssued: false,
    postCopyStarted: false,
    disk: { totalBytes: 0, transferredBytes: 0 },
  };
  if (opts.blockMigration && to.nbd) {
    for (const { d, i } of local) {
      const exportName = to.nbd.exports[d.name];
      if (!exportName) throw permanent(`the target of ${id} exports no disk ${d.name}`);
      await qmp.execute('blockdev-del', { 'node-name': mirrorNode(i) }).catch(ignoreQmp);
      await qmp.execute('blockdev-add', {
        driver: 'nbd',
        'node-name': mirrorNode(i),
        server: { type: 'inet', host: to.nbd.host, port: String(to.nbd.port) },
        export: exportName,
        ...(tls ? { 'tls-creds': TLS_CLIENT, 'tls-hostname': to.tlsName ?? to.nbd.host } : {}),
      });
      // The target disk overlays the same image, so only this VM's own clusters need copying;
      // write-blocking keeps the mirror in step once it is ready, so switch-over has little left.
      await qmp.execute('blockdev-mirror', {
        'job-id': mirrorNode(i),
        device: diskNode(i),
        target: mirrorNode(i),
        sync: 'top',
        'copy-mode': 'write-blocking',
        // Kept once it ends (dismissed by vmove) so a failed mirror's error can be read and told.
        'auto-dismiss': false,
      });
      out.mirrored.push(i);
    }
  }
  await q.records.write(id, { ...rec, outgoing: out });
  log.info({ vm: id, to: to.migrationUri, blockMigration: opts.blockMigration, armed }, 'migration started');
  await advanceOutgoing(q, id);
}

export async function tuneMigration(q: QemuHost, id: string, tuning: MigrationTuning): Promise<void> {
  const rec = await q.records.require(id);
  const out = rec.outgoing;
  if (!out) throw permanent(`${id} has no migration to tune`);
  const qmp = q.vms.qmp(id);
  if (tuning.autoConverge && !out.armed.autoConverge) {
    throw permanent('auto-converge was not allowed when this migration started (QEMU fixes capabilities at start)');
  }
  await qmp.execute('migrate-set-parameters', migrationParameters(tuning, out.armed));
  let postCopyStarted = out.postCopyStarted;
  if (tuning.postCopy && !postCopyStarted) {
    if (!out.armed.postCopy) {
      throw permanent(
        out.blockMigration
          ? 'post-copy is not offered with block migration (the disk mirror must finish before the target runs)'
          : 'post-copy was not enabled on both ends when this migration started',
      );
    }
    if (out.migrateIssued) {
      await qmp.execute('migrate-start-postcopy');
      postCopyStarted = true;
    }
  }
  await q.records.write(id, { ...rec, outgoing: { ...out, tuning, postCopyStarted } });
  await advanceOutgoing(q, id);
}

export async function migrationStatus(q: QemuHost, id: string): Promise<MigrationStatus> {
  await advanceOutgoing(q, id);
  const rec = await q.records.require(id);
  const qmp = q.vms.qmp(id);
  const query = await qmp.execute<QueryMigrate>('query-migrate');
  const disk = rec.outgoing ? rec.outgoing.disk : { totalBytes: 0, transferredBytes: 0 };
  const status = toMigrationStatus(query, disk);
  // What QEMU itself has set, not what was asked: the proof a stream is encrypted.
  const params = await qmp.execute<{ 'tls-creds'?: string }>('query-migrate-parameters');
  status.tls = !!params['tls-creds'];
  // Until every mirror is ready, `migrate` has not been issued: QEMU says "none", vmove says setup.
  if (rec.outgoing && !rec.outgoing.migrateIssued && status.state === 'none') status.state = 'setup';
  // Completed only once the mirrors are cancelled: the target must not run before that.
  if (status.state === 'completed' && rec.outgoing && rec.outgoing.mirrored.length > 0) status.state = 'active';
  return status;
}

export async function migrationMayHaveEnded(q: QemuHost, id: string, ms: number): Promise<void> {
  const ends = (d: Record<string, unknown>) => ['completed', 'failed', 'cancelled', 'postcopy-active'].includes(String(d.status));
  await q.vms.qmp(id).waitForEvent('MIGRATION', ends, ms).catch(() => undefined);
}

/**
 * Move an outgoing migration along; level-triggered so it works after an agent restart:
 * mirrors ready → migrate; migration completed → cancel the mirrors (they finish copying).
 */
export async function advanceOutgoing(q: QemuHost, id: string): Promise<void> {
  const rec = await q.records.read(id);
  const out = rec?.outgoing;
  if (!rec || !out) return;
  const qmp = q.vms.qmp(id);
  const all = (await qmp.execute<BlockJob[]>('query-block-jobs')).filter((j) => j.type === 'mirror');
  const jobs = all.filter((j) => j.status !== 'concluded');
  const next: Outgoing = { ...out };
  if (jobs.length > 0) next.disk = diskProgress(jobs);
  const state = migrationState((await qmp.execute<QueryMigrate>('query-migrate')).status);

  // A mirror that failed leaves the target's disk behind the source's: it must never run.
  const errors = all.filter((j) => j.status === 'concluded' && j.error).map((j) => `${j.device}: ${j.error}`);
  const gone = out.mirrored.filter((i) => !all.some((j) => j.device === mirrorNode(i)));
  if (errors.length > 0 || (gone.length > 0 && state !== 'completed')) {
    await dismissConcluded(qmp, all);
    const when = out.migrateIssued ? 'during the migration' : 'before the migration started';
    throw transient(`disk mirror of ${id} failed ${when}: ${errors.length ? errors.join('; ') : 'its job is gone (target unreachable?)'}`);
  }

  if (!out.migrateIssued) {
    if (jobs.every((j) => j.ready)) {
      await qmp.execute('migrate', { uri: out.endpoint.migrationUri });
      next.migrateIssued = true;
      if (out.tuning.postCopy && out.armed.postCopy) {
        await qmp.execute('migrate-start-postcopy');
        next.postCopyStarted = true;
      }
      log.info({ vm: id }, out.mirrored.length > 0 ? 'disks mirrored; migrating memory' : 'migrating memory');
    }
  } else if (state === 'completed' && out.mirrored.length > 0) {
    for (const i of out.mirrored) {
      if (jobs.some((j) => j.device === mirrorNode(i))) await qmp.execute('block-job-cancel', { device: mirrorNode(i) }).catch(ignoreQmp);
    }
    if (!(await waitJobsGone(qmp, 30_000))) throw transient(`disk mirrors of ${id} did not finish after the migration`);
    for (const i of out.mirrored) await qmp.execute('blockdev-del', { 'node-name': mirrorNode(i) }).catch(ignoreQmp);
    next.disk = { totalBytes: next.disk.totalBytes, transferredBytes: next.disk.totalBytes };
    next.mirrored = [];
    log.info({ vm: id }, 'migration completed; disk mirrors finished');
  }
  if (JSON.stringify(next) !== JSON.stringify(out)) await q.records.write(id, { ...rec, outgoing: next });
}

export async function abortMigration(q: QemuHost, id: string): Promise<void> {
  const rec = await q.records.read(id);
  if (!rec || (await q.vms.pid(id)) === undefined) return;
  const qmp = q.vms.qmp(id);
  const query = await qmp.execute<QueryMigrate>('query-migrate');
  const state = migrationState(query.status);
  if (state === 'postcopy') throw permanent(`${id} is in post-copy: the target already runs it and the migration cannot be cancelled`);
  if (state === 'active' || state === 'setup') {
    await qmp.execute('migrate_cancel');
    for (let i = 0; i < 200; i++) {
      const s = migrationState((await qmp.execute<QueryMigrate>('query-migrate')).status);
      if (s !== 'active' && s !== 'setup') break;
      await sleep(50);
    }
  }
  for (const i of rec.outgoing?.mirrored ?? []) {
    await qmp.execute('block-job-cancel', { device: mirrorNode(i), force: true }).catch(ignoreQmp);
  }
  if (rec.outgoing?.mirrored.length) await waitJobsGone(qmp, 10_000);
  for (const i of rec.outgoing?.mirrored ?? []) await qmp.execute('blockdev-del', { 'node-name': mirrorNode(i) }).catch(ignoreQmp);
  // A cancelled migration may leave the guest paused in its last phase; it keeps running here.
  if ((await q.vms.runStatus(id)) !== 'running' && state !== 'completed') await qmp.execute('cont').catch(ignoreQmp);
  await q.records.write(id, { spec: rec.spec, layout: rec.layout });
  log.info({ vm: id }, 'migration aborted; VM keeps running here');
}

export async function resumeSource(q: QemuHost, id: string): Promise<void> {
  const rec = await q.records.require(id);
  if ((await q.vms.pid(id)) === undefined) throw permanent(`${id} has no QEMU process on ${q.host.nodeName} to resume`);
  const qmp = q.vms.qmp(id);
  const query = await qmp.execute<QueryMigrate>('query-migrate');
  if (migrationState(query.status) === 'postcopy') throw permanent(`${id} switched to post-copy: its state lives on the target now`);
  if (rec.outgoing?.mirrored.length) {
    for (const i of rec.outgoing.mirrored) await qmp.execute('block-job-cancel', { device: mirrorNode(i), force: true }).catch(ignoreQmp);
    await waitJobsGone(qmp, 10_000);
    for (const i of rec.outgoing.mirrored) await qmp.execute('blockdev-del', { 'node-name': mirrorNode(i) }).catch(ignoreQmp);
  }
  // cont re-activates the disk images QEMU handed over at the end of the migration.
  if ((await q.vms.runStatus(id)) !== 'running') await qmp.execute('cont');
  await q.records.write(id, { spec: rec.spec, layout: rec.layout });
}

/** Dismiss the mirror jobs that have ended (they are kept for their error: no auto-dismiss). */
async function dismissConcluded(qmp: QmpClient, jobs: BlockJob[]): Promise<void> {
  for (const j of jobs) if (j.status === 'concluded') await qmp.execute('job-dismiss', { id: j.device }).catch(ignoreQmp);
}

async function waitJobsGone(qmp: QmpClient, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const jobs = (await qmp.execute<BlockJob[]>('query-block-jobs')).filter((j) => j.type === 'mirror');
    await dismissConcluded(qmp, jobs);
    if (jobs.every((j) => j.status === 'concluded')) return true;
    await sleep(50);
  }
  return false;
}

function hostOfUri(uri: string): string {
  const rest = uri.replace(/^tcp:/, '');
  return rest.slice(0, rest.lastIndexOf(':'));
}

function sameEndpoint(a: IncomingEndpoint, b: IncomingEndpoint): boolean {
  return a.migrationUri === b.migrationUri && a.nbd?.port === b.nbd?.port;
}
