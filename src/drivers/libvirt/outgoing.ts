// The source side of a live migration, peer-to-peer: this host's daemon connects to the target's
// and drives Begin/Prepare/Perform/Finish/Confirm itself, so a migration survives an agent
// restart. The migration call lasts as long as the migration, on a connection of its own; its end
// is settled into the outgoing record. Features libvirt fixes at start are armed up front, and a
// tuning that needs more restarts the migration. The driver calls the exported steps under the
// VM's lock.
import { setTimeout as sleep } from 'node:timers/promises';
import type { IncomingEndpoint, MigrationStatus, MigrationTuning } from '../../protocol/migration';
import { permanent, transient } from '../common/errors';
import { DriverError } from '../driver';
import { POLL_MS, activeJobStats, outgoingJobActive } from './domains';
import { diskTarget, domainFacts, retargetXml, vmSpecFromXml } from './domainXml';
import { boot } from './lifecycle';
import type { LibvirtHost } from './libvirtHost';
import type { LibvirtEndpoint, OutgoingRecord } from './migrationRecords';
import { type ArmedFeatures, armedFeatures, inPostCopy, isActiveJob, isOutgoingMigration, migrationFlags, migrationParams, toMigrationStatus } from './migrationPlan';
import { DomainState, JobStatsFlag, JobType, LibvirtConnection, PausedReason, ShutoffReason, UNLIMITED_BANDWIDTH_MIBPS, XmlFlag, type DomainRef } from './remote';
import { VirErr, isCode } from './rpc';

/** How long the driver waits for a migration to show up, arrive, or wind down. */
export const MIGRATION_WAIT_MS = 60_000;

export async function startMigration(lv: LibvirtHost, id: string, endpoint: LibvirtEndpoint, tuning: MigrationTuning, opts: { blockMigration: boolean }): Promise<void> {
  const c = await lv.connection();
  const d = await lv.requireDomain(c, id);
  const rec = await lv.records.outgoing(id);
  const sameTarget = rec?.endpoint.libvirt.peerUri === endpoint.libvirt.peerUri;
  if (await outgoingJobActive(c, d)) {
    if (rec && !sameTarget) throw permanent(`${id} is already migrating to ${rec.endpoint.libvirt.peerUri}`);
    return;
  }
  const { state, reason } = await c.getState(d);
  if (rec && sameTarget && (rec.result?.ok || (state === DomainState.Shutoff && reason === ShutoffReason.Migrated))) return;
  if (state !== DomainState.Running && state !== DomainState.Blocked) {
    throw permanent(`${id} is not running on ${lv.host.nodeName}; it cannot be live-migrated`);
  }
  await launchMigration(lv, c, d, { endpoint, blockMigration: opts.blockMigration, tuning, armed: armedFeatures(tuning, endpoint.postCopy === true, opts.blockMigration) });
}

export async function launchMigration(
  lv: LibvirtHost,
  c: LibvirtConnection,
  d: DomainRef,
  m: { endpoint: LibvirtEndpoint; blockMigration: boolean; tuning: MigrationTuning; armed: ArmedFeatures; untuned?: boolean },
): Promise<void> {
  const id = d.name;
  const live = await c.getXmlDesc(d, XmlFlag.Migratable);
  const persistent = await c.getXmlDesc(d, XmlFlag.Inactive | XmlFlag.Migratable);
  const spec = vmSpecFromXml(live);
  if (!spec) throw permanent(`${id} carries no vmove metadata; it was not defined by vmove`);
  const facts = domainFacts(live);
  const inc = m.endpoint.libvirt;
  const paths = new Map<string, string>();
  const copyDisks: string[] = [];
  spec.disks.forEach((disk, i) => {
    const dev = diskTarget(i);
    const here = facts.diskFiles.get(dev);
    const there = inc.disks[disk.name];
    if (here && there) paths.set(here, there);
    if (disk.storage === 'Local' && m.blockMigration) copyDisks.push(dev);
  });
  if (facts.serialLog) paths.set(facts.serialLog, inc.serialLog);
  const local = spec.disks.filter((disk) => disk.storage === 'Local');
  if (local.length > 0 && !m.blockMigration) throw permanent(`${id} has local disks; only block migration can move them live`);
  const flags = migrationFlags(m.armed, { blockMigration: m.blockMigration, sharedDisks: local.length < spec.disks.length, tls: m.endpoint.tls === true });
  const params = migrationParams({
    to: inc,
    destXml: retargetXml(live, paths),
    persistXml: retargetXml(persistent, paths),
    tuning: m.tuning,
    armed: m.armed,
    copyDisks,
  });
  // The migration call lasts as long as the migration; it gets a connection of its own.
  const mc = await LibvirtConnection.open(lv.settings.socketPath);
  // Statistics of an earlier migration would read as this one's result: read them away.
  await c.getJobStats(d, JobStatsFlag.Completed).catch(() => undefined);
  const rec: OutgoingRecord = {
    endpoint: m.endpoint,
    blockMigration: m.blockMigration,
    tuning: m.tuning,
    armed: m.armed,
    startedAt: new Date().toISOString(),
    postCopyStarted: false,
  };
  await lv.records.saveOutgoing(id, rec);
  const call = mc
    .migratePerformP2P(d, inc.peerUri, params, flags)
    .then(
      () => settle(lv, id, { ok: true }),
      (err: unknown) => {
        const e = err as Error;
        return settle(lv, id, { ok: false, error: e.message, transient: err instanceof DriverError ? err.transient : true });
      },
    )
    .finally(() => {
      lv.performing.delete(id);
      void mc.close();
    });
  lv.performing.set(id, call);
  lv.log.info({ vm: id, to: inc.peerUri, blockMigration: m.blockMigration, armed: m.armed, flags }, 'migration started');
  // Downtime and a requested post-copy switch apply to the running job: set them once it runs.
  if (m.untuned) return;
  void applyWhenActive(lv, id).catch((err: unknown) => lv.log.warn({ vm: id, err: (err as Error).message }, 'could not tune the migration'));
}

async function settle(lv: LibvirtHost, id: string, result: NonNullable<OutgoingRecord['result']>): Promise<void> {
  const rec = await lv.records.outgoing(id);
  if (!rec) return;
  if (rec.restarting) return; // the restart records the outcome of its own attempt
  let final: MigrationStatus | undefined;
  if (result.ok) {
    try {
      const c = await lv.connection();
      const stats = await c.getJobStats(await c.lookupByName(id), JobStatsFlag.Completed | JobStatsFlag.KeepCompleted);
      if (stats.type === JobType.Completed) final = toMigrationStatus(stats, { postCopy: false });
    } catch (err) {
      lv.log.warn({ vm: id, err: (err as Error).message }, 'could not read the statistics of the completed migration');
    }
  }
  await lv.records.saveOutgoing(id, { ...rec, result, ...(final ? { final } : {}) });
  if (result.ok) lv.log.info({ vm: id }, 'migration completed');
  else lv.log.warn({ vm: id, err: result.error }, rec.aborting ? 'migration cancelled' : 'migration failed');
}

async function applyWhenActive(lv: LibvirtHost, id: string): Promise<void> {
  const c = await lv.connection();
  const d = await lv.requireDomain(c, id);
  const deadline = Date.now() + MIGRATION_WAIT_MS;
  while (lv.performing.has(id) && Date.now() < deadline) {
    const stats = await activeJobStats(c, d);
    if (stats && isActiveJob(stats) && isOutgoingMigration(stats) && toMigrationStatus(stats, { postCopy: false }).state === 'active') {
      await lv.locks.run(id, async () => {
        // A tuneMigration, abort or restart may have come first; the newest tuning wins.
        const rec = await lv.records.outgoing(id);
        if (rec && !rec.aborting && !rec.restarting && (await outgoingJobActive(c, d))) await applyTuning(lv, c, d, rec.tuning);
      });
      return;
    }
    await sleep(POLL_MS);
  }
}

export async function tuneMigration(lv: LibvirtHost, id: string, tuning: MigrationTuning): Promise<void> {
  const c = await lv.connection();
  const d = await lv.requireDomain(c, id);
  const rec = await lv.records.outgoing(id);
  if (!rec) throw permanent(`${id} has no outgoing migration to tune`);
  const { state, reason } = await c.getState(d);
  const postCopyNow = inPostCopy(state, reason);
  const needsRestart =
    !postCopyNow && ((tuning.autoConverge && !rec.armed.autoConverge) || (tuning.postCopy && !rec.armed.postCopy && rec.endpoint.postCopy === true));
  if (!(await outgoingJobActive(c, d))) {
    // A migration that has ended needs no tuning: its status says how it ended.
    if (rec.result || !lv.performing.has(id)) return;
    // Started, but libvirt does not report the job yet: a restart needs the job, so ask again;
    // anything else is saved, and applyWhenActive applies the newest tuning.
    if (needsRestart) throw transient(`the migration of ${id} has not started yet; tune it again`);
    await lv.records.saveOutgoing(id, { ...rec, tuning });
    return;
  }
  if (needsRestart) {
    // libvirt fixes auto-converge and post-copy when a migration starts and has no call to
    // arm them later: start over with them armed (pre-copy begins again).
    await restartMigration(lv, c, d, rec, tuning);
    return;
  }
  await lv.records.saveOutgoing(id, { ...rec, tuning });
  await applyTuning(lv, c, d, tuning);
}

/** Bandwidth, downtime and a post-copy switch, on a running migration job. */
async function applyTuning(lv: LibvirtHost, c: LibvirtConnection, d: DomainRef, tuning: MigrationTuning): Promise<void> {
  const id = d.name;
  await c.migrateSetMaxSpeed(d, tuning.bandwidthMiBps > 0 ? Math.round(tuning.bandwidthMiBps) : UNLIMITED_BANDWIDTH_MIBPS);
  await c.migrateSetMaxDowntime(d, Math.max(1, Math.round(tuning.maxDowntimeMs)));
  const rec = await lv.records.outgoing(id);
  if (!rec || !tuning.postCopy || rec.postCopyStarted) return;
  if (!rec.armed.postCopy) throw permanent(`post-copy is not possible for this migration of ${id} (block migration, multifd, or the target cannot)`);
  await c.migrateStartPostCopy(d);
  await lv.records.updateOutgoing(id, { postCopyStarted: true });
  lv.log.info({ vm: id }, 'switched to post-copy');
}

async function restartMigration(lv: LibvirtHost, c: LibvirtConnection, d: DomainRef, rec: OutgoingRecord, tuning: MigrationTuning): Promise<void> {
  const id = d.name;
  const armed: ArmedFeatures = {
    ...rec.armed,
    autoConverge: rec.armed.autoConverge || tuning.autoConverge,
    postCopy: rec.armed.postCopy || (tuning.postCopy && rec.endpoint.postCopy === true && !rec.blockMigration && rec.armed.parallelConnections === 0),
  };
  lv.log.info({ vm: id, armed }, 'restarting the migration to arm features libvirt fixes at start');
  await lv.records.saveOutgoing(id, { ...rec, restarting: true });
  await c.abortJob(d).catch((err: unknown) => {
    if (!isCode(err, VirErr.OperationInvalid)) throw err;
  });
  await waitMigrationEnded(lv, c, d);
  try {
    await launchMigration(lv, c, d, { endpoint: rec.endpoint, blockMigration: rec.blockMigration, tuning, armed });
  } catch (err) {
    const error = `restarting the migration failed: ${(err as Error).message}`;
    await lv.records.updateOutgoing(id, { restarting: false, result: { ok: false, error, transient: err instanceof DriverError ? err.transient : true } });
    throw err;
  }
}

export async function abortMigration(lv: LibvirtHost, id: string): Promise<void> {
  const c = await lv.connection();
  const d = await lv.lookup(c, id);
  if (!d) return;
  const rec = await lv.records.outgoing(id);
  if (!(await outgoingJobActive(c, d)) && !lv.performing.has(id)) return;
  const { state, reason } = await c.getState(d);
  if (inPostCopy(state, reason)) throw permanent(`${id} switched to post-copy: its state lives on the target now`);
  if (rec) await lv.records.saveOutgoing(id, { ...rec, aborting: true, restarting: false });
  await c.abortJob(d).catch((err: unknown) => {
    if (!isCode(err, VirErr.OperationInvalid)) throw err; // no job: it ended meanwhile
  });
  await waitMigrationEnded(lv, c, d);
  // libvirt resumes the source after a cancelled migration; make sure it runs.
  const after = await c.getState(d);
  if (after.state === DomainState.Paused && after.reason !== PausedReason.Postcopy) await c.resume(d);
}

/** Source side, after a failed switch-over: run the VM here again (from its disks if it was handed over). */
export async function resumeSource(lv: LibvirtHost, id: string): Promise<void> {
  const c = await lv.connection();
  const d = await lv.requireDomain(c, id);
  if (await outgoingJobActive(c, d)) throw permanent(`${id} is still migrating; abort the migration instead`);
  const { state, reason } = await c.getState(d);
  if (state === DomainState.Running || state === DomainState.Blocked) return;
  if (state === DomainState.Paused) {
    if (reason === PausedReason.Postcopy) throw permanent(`${id} switched to post-copy: its state lives on the target now`);
    await c.resume(d);
    await lv.records.clearOutgoing(id);
    return;
  }
  await boot(lv, c, d, id);
}

async function waitMigrationEnded(lv: LibvirtHost, c: LibvirtConnection, d: DomainRef): Promise<void> {
  const pending = lv.performing.get(d.name);
  if (pending) {
    await pending;
    return;
  }
  const deadline = Date.now() + MIGRATION_WAIT_MS;
  while (await outgoingJobActive(c, d)) {
    if (Date.now() > deadline) throw transient(`the migration of ${d.name} did not end within ${MIGRATION_WAIT_MS} ms`);
    await sleep(POLL_MS);
  }
}

/** The target of a migration from this host must be a libvirt host. */
export function asLibvirtEndpoint(to: IncomingEndpoint): LibvirtEndpoint {
  const inc = (to as Partial<LibvirtEndpoint>).libvirt;
  if (!inc || typeof inc.peerUri !== 'string' || typeof inc.listenAddress !== 'string' || typeof inc.serialLog !== 'string' || typeof inc.disks !== 'object') {
    throw permanent('the migration target is not a libvirt host (its endpoint has no libvirt part)');
  }
  return to as LibvirtEndpoint;
}
