// How far an outgoing migration got: from libvirt's statistics of the running job, of the finished
// one, or from what this host recorded when the migration call ended (libvirt keeps finished
// statistics in memory only, and none for a migration aborted before memory moved).
import type { MigrationStatus } from '../../protocol/migration';
import { emptyMigrationStatus } from '../common/migrationStatus';
import { activeJobStats } from './domains';
import type { LibvirtHost } from './libvirtHost';
import { inPostCopy, isActiveJob, isOutgoingMigration, toMigrationStatus } from './migrationPlan';
import { DomainState, JobStatsFlag, JobType, ShutoffReason } from './remote';

export async function migrationStatus(lv: LibvirtHost, id: string): Promise<MigrationStatus> {
  const c = await lv.connection();
  const d = await lv.lookup(c, id);
  const rec = await lv.records.outgoing(id);
  if (!d) return emptyMigrationStatus(rec?.result?.ok ? 'completed' : 'none');
  const { state, reason } = await c.getState(d);
  const active = await activeJobStats(c, d);
  if (active && isActiveJob(active) && isOutgoingMigration(active)) return toMigrationStatus(active, { postCopy: inPostCopy(state, reason) });
  if (rec?.restarting) return emptyMigrationStatus('setup');
  const handedOver = state === DomainState.Shutoff && reason === ShutoffReason.Migrated;
  // libvirt's statistics of a finished job only speak of a migration this host started.
  if (!rec && !handedOver) return emptyMigrationStatus('none');

  const done = await c.getJobStats(d, JobStatsFlag.Completed | JobStatsFlag.KeepCompleted);
  if (done.type === JobType.Completed || done.type === JobType.Failed || done.type === JobType.Cancelled) {
    const status = toMigrationStatus(done, { postCopy: false });
    if (status.state === 'failed' && rec?.aborting) status.state = 'cancelled';
    if (status.state !== 'completed' && rec?.result && !rec.result.ok) {
      status.error = rec.result.error;
      status.errorTransient = rec.result.transient;
    }
    return status;
  }
  if (rec?.result) {
    if (rec.result.ok) return rec.final ?? emptyMigrationStatus('completed');
    const status = emptyMigrationStatus(rec.aborting ? 'cancelled' : 'failed', rec.result.error);
    status.errorTransient = rec.result.transient;
    return status;
  }
  if (handedOver) {
    // libvirt stops the source a moment before it files the job's statistics; the migration
    // call returns after both. Wait for it when it is ours (its settlement reads them).
    const pending = lv.performing.get(id);
    if (pending) {
      await pending;
      return migrationStatus(lv, id);
    }
    return emptyMigrationStatus('completed'); // statistics died with an earlier libvirtd
  }
  // The call is out but libvirt shows no job yet; or the migration ended while no driver
  // watched it and libvirt kept no statistics (it keeps none when aborted before RAM moved).
  if (lv.performing.has(id)) return emptyMigrationStatus('setup');
  if (rec?.aborting) return emptyMigrationStatus('cancelled');
  const status = emptyMigrationStatus('failed', 'the migration ended while no agent watched it, and libvirt kept no record of why');
  status.errorTransient = true;
  return status;
}
