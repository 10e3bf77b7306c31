// Calls on one domain that allow for its races: a domain that ended or went away meanwhile, a job
// that is not there (libvirt answers "operation invalid" for a domain that does not run).
import { setTimeout as sleep } from 'node:timers/promises';
import { isActiveJob, isOutgoingMigration } from './migrationPlan';
import type { DomainRef, JobStats, LibvirtConnection } from './remote';
import { VirErr, isCode } from './rpc';

/** How often the driver looks again while it waits for libvirt. */
export const POLL_MS = 200;

/** Statistics of the domain's current job; undefined when it is not running (no jobs then). */
export async function activeJobStats(c: LibvirtConnection, d: DomainRef): Promise<JobStats | undefined> {
  try {
    return await c.getJobStats(d);
  } catch (err) {
    if (isCode(err, VirErr.OperationInvalid)) return undefined;
    throw err;
  }
}

export async function outgoingJobActive(c: LibvirtConnection, d: DomainRef): Promise<boolean> {
  const stats = await activeJobStats(c, d);
  return stats !== undefined && isActiveJob(stats) && isOutgoingMigration(stats);
}

export async function destroyIfActive(c: LibvirtConnection, d: DomainRef): Promise<void> {
  try {
    await c.destroy(d);
  } catch (err) {
    if (!isCode(err, VirErr.OperationInvalid) && !isCode(err, VirErr.NoDomain)) throw err;
  }
}

export async function waitForState(c: LibvirtConnection, d: DomainRef, ok: (state: number) => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (ok((await c.getState(d)).state)) return true;
    if (Date.now() > deadline) return false;
    await sleep(POLL_MS);
  }
}
