// The baseline vmove's tuned migrations are compared with in benchmarks: the same hosts and paths,
// libvirt's own migration settings.
import { setTimeout as sleep } from 'node:timers/promises';
import type { IncomingEndpoint, MigrationStatus, MigrationTuning } from '../../protocol/migration';
import { POLL_MS } from './domains';
import type { LibvirtHost } from './libvirtHost';
import type { ArmedFeatures } from './migrationPlan';
import { abortMigration, asLibvirtEndpoint, launchMigration } from './outgoing';
import { migrationStatus } from './outgoingStatus';

/**
 * A live migration with libvirt's defaults, as `virsh migrate --live --p2p --persistent` runs
 * it: no bandwidth cap unless given, QEMU's default downtime limit, auto-converge only when
 * asked, no post-copy. Only what vmove's hosts need is added (the target's paths and address;
 * NBD copy of Local disks). For benchmarks that compare vmove's tuned migrations with it: waits
 * for the end, aborts after `timeoutMs` (the answer is then the last progress seen, cancelled).
 */
export async function migrateWithLibvirtDefaults(
  lv: LibvirtHost,
  id: string,
  to: IncomingEndpoint,
  opts: { blockMigration: boolean; bandwidthMiBps?: number; autoConverge?: boolean; timeoutMs?: number },
): Promise<MigrationStatus> {
  const endpoint = asLibvirtEndpoint(to);
  const autoConverge = opts.autoConverge === true;
  await lv.locks.run(id, async () => {
    const c = await lv.connection();
    const d = await lv.requireDomain(c, id);
    const tuning: MigrationTuning = { bandwidthMiBps: opts.bandwidthMiBps ?? 0, maxDowntimeMs: 0, autoConverge, postCopy: false };
    const armed: ArmedFeatures = { autoConverge, postCopy: false, parallelConnections: 0 };
    await launchMigration(lv, c, d, { endpoint, blockMigration: opts.blockMigration, tuning, armed, untuned: true });
  });
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const ended = (s: MigrationStatus): boolean => s.state === 'completed' || s.state === 'failed' || s.state === 'cancelled';
  let status = await migrationStatus(lv, id);
  while (!ended(status)) {
    if (Date.now() > deadline) {
      await lv.locks.run(id, () => abortMigration(lv, id));
      return { ...status, state: 'cancelled', error: `did not complete within ${opts.timeoutMs ?? 120_000} ms` };
    }
    await sleep(POLL_MS);
    status = await migrationStatus(lv, id);
  }
  return status;
}
