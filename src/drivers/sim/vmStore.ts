// The simulated host's VMs, persisted one JSON file each under `<stateDir>/sim/vms/`, so an
// agent that restarts finds its VMs still "running" (as QEMU processes outlive their agent).
// The guest heartbeat is derived from the clock: it advances once per simulated second while
// the VM runs, including while no agent is watching. A booting guest counts up from below zero
// (minus its boot seconds) and shows no heartbeat until it reaches zero; the count travels with
// a live migration, so a guest moved while it boots goes on booting on the target.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonFile, writeFileAtomic } from '../../fs/atomicFile';
import type { MigrationStatus } from '../../protocol/migration';
import type { VmInfo, VmSpec, VmState } from '../../protocol/vm';

export interface SimVmRecord {
  spec: VmSpec;
  state: VmState;
  /** Resources as running (as defined while stopped). */
  cpu: number;
  memoryBytes: number;
  /** Heartbeat when the guest last paused or stopped (below zero: seconds of boot left). */
  heartbeatBase: number;
  /** Clock time (real ms) when the guest last booted or resumed; set while Running. */
  runningSince?: number;
  /** Simulated ms after `runningSince` in which the guest makes no progress (injected hang). */
  hangSimMs?: number;
  /** Target side: listening for a migration stream. */
  incoming?: { port: number; blockMigration: boolean };
  /** Source side: the last outgoing migration. */
  migration?: { uri: string; status: MigrationStatus };
}

export class SimVmStore {
  private readonly records = new Map<string, SimVmRecord>();
  private readonly writes = new Map<string, Promise<void>>();
  private readonly dir: string;

  constructor(
    stateDir: string,
    private readonly timeScale: number,
  ) {
    this.dir = join(stateDir, 'sim', 'vms');
  }

  async load(): Promise<SimVmRecord[]> {
    let files: string[] = [];
    try {
      files = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const f of files.filter((f) => f.endsWith('.json'))) {
      const rec = await readJsonFile<SimVmRecord>(join(this.dir, f));
      if (rec) this.records.set(rec.spec.id, rec);
    }
    return [...this.records.values()];
  }

  get(id: string): SimVmRecord | undefined {
    return this.records.get(id);
  }

  all(): SimVmRecord[] {
    return [...this.records.values()];
  }

  set(rec: SimVmRecord): Promise<void> {
    this.records.set(rec.spec.id, rec);
    return this.persist(rec.spec.id);
  }

  delete(id: string): Promise<void> {
    this.records.delete(id);
    return this.persist(id);
  }

  /** Write the record's current state (writes of one VM happen in order; the latest wins). */
  persist(id: string): Promise<void> {
    const prev = this.writes.get(id) ?? Promise.resolve();
    const next = prev.then(async () => {
      const rec = this.records.get(id);
      const path = join(this.dir, `${id}.json`);
      if (rec) await writeFileAtomic(path, JSON.stringify(rec), { fsync: false });
      else await rm(path, { force: true });
    });
    this.writes.set(id, next.catch(() => undefined));
    return next;
  }

  async flush(): Promise<void> {
    await Promise.all(this.writes.values());
  }

  heartbeat(rec: SimVmRecord, now: number): number {
    if (rec.state !== 'Running' || rec.runningSince === undefined) return rec.heartbeatBase;
    const simMs = (now - rec.runningSince) * this.timeScale - (rec.hangSimMs ?? 0);
    return rec.heartbeatBase + Math.max(0, Math.floor(simMs / 1000));
  }

  info(rec: SimVmRecord, now: number): VmInfo {
    const heartbeat = this.heartbeat(rec, now);
    return {
      id: rec.spec.id,
      uid: rec.spec.uid,
      state: rec.state,
      cpu: rec.cpu,
      memoryBytes: rec.memoryBytes,
      ...(heartbeat >= 0 ? { heartbeat } : {}),
    };
  }

  /** Freeze the heartbeat: the guest stops running here (pause, stop, hand-over). */
  freeze(rec: SimVmRecord, state: VmState, now: number): void {
    rec.heartbeatBase = this.heartbeat(rec, now);
    rec.runningSince = undefined;
    rec.hangSimMs = undefined;
    rec.state = state;
  }

  /** Let the guest run on from its frozen heartbeat. */
  resume(rec: SimVmRecord, now: number, hangSimMs = 0): void {
    rec.state = 'Running';
    rec.runningSince = now;
    rec.hangSimMs = hangSimMs || undefined;
  }
}
