// What each operation kind does with the driver, and what happens when an agent restart finds
// one still recorded as Running and runs it again:
//   ensureVm          disks, define, start — each idempotent; the disk step is checkpointed so
//                     fresh disks are not recreated under a guest that already booted from them
//   startVm, stopVm, deleteVm, abortMigration, completeIncoming, resumeSource
//                     the driver call is a no-op once done
//   prepareIncoming   answers the same endpoint while the VM waits for its stream
//   migrate           checkpointed once started: re-attaches to the driver's migration and
//                     watches it, never starts a second one
//   copyDisks         copies again from the start (the VM does not run here meanwhile)
//   hotplug           sets absolute values
//   verify            watches a new window
import { Transform, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DiskReader, type Driver, NotArrivedYet } from '../drivers/driver';
import type { IncomingEndpoint, MigrationStatus } from '../protocol/migration';
import type { VmInfo } from '../protocol/vm';
import { OperationFailure } from './errors';
import type { CopyProgress, OperationRequest } from '../protocol/operations';

export interface OperationOutcome {
  message: string;
  endpoint?: IncomingEndpoint;
  guestHeartbeat?: number;
}

export interface OperationContext {
  driver: Driver;
  signal: AbortSignal;
  pollMs: number;
  /** Let other operations on this VM run (a migration only watches from here on). */
  releaseVm(): void;
  /** Progress shown in the operation's status while it runs. */
  progress(update: { migration?: MigrationStatus; copy?: CopyProgress; message?: string }): void;
  /** Whether this operation already got past `step` before a restart (persisted). */
  reached(step: string): boolean;
  /** Record that this operation got past `step`. */
  checkpoint(step: string): Promise<void>;
  /** Read a disk from another agent (copyDisks). */
  fetchDisk(endpoint: string, vmId: string, disk: string, signal: AbortSignal): Promise<DiskReader>;
}

type Handler<K extends OperationRequest['kind']> = (req: Extract<OperationRequest, { kind: K }>, ctx: OperationContext) => Promise<OperationOutcome>;
type Handlers = { [K in OperationRequest['kind']]: Handler<K> };

async function find(driver: Driver, id: string): Promise<VmInfo | undefined> {
  return (await driver.list()).find((v) => v.id === id);
}

/** How the migration stream is protected, for the move's history. */
export function streamSecurity(endpoint: IncomingEndpoint, insecureAsked: boolean, driver: string): string {
  if (endpoint.tls) return 'over TLS';
  if (insecureAsked) return 'in plaintext, as spec.policy.insecureMigration (or the controller\'s --insecure-migration) asked';
  if (driver === 'sim') return '(simulated stream)';
  return `in plaintext: the ${driver} driver has no TLS certificates for migrations here`;
}

/** How long completeIncoming waits for the target to load the state the source finished sending. */
const ARRIVAL_WAIT_MS = 60_000;

/** Until the migrate loop looks again: its next poll, or sooner when the driver says the migration ended. */
async function untilNextLook(ctx: OperationContext, id: string): Promise<void> {
  const { driver, signal } = ctx;
  if (!driver.migrationMayHaveEnded) return sleep(ctx.pollMs, undefined, { signal });
  await driver.migrationMayHaveEnded(id, ctx.pollMs); // a poll interval at most, like the sleep
  signal.throwIfAborted();
}

const fmtMs = (ms: number | undefined): string => (ms === undefined ? '?' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

const handlers: Handlers = {
  async ensureVm(req, ctx) {
    const { driver } = ctx;
    if (!ctx.reached('disks')) {
      const here = await find(driver, req.vm.id);
      if (req.disks === 'fresh' && here && here.state !== 'Stopped') {
        throw new OperationFailure(`VM is ${here.state} here: its disks will not be recreated under it`, false);
      }
      await driver.ensureDisks(req.vm, req.disks);
      await ctx.checkpoint('disks');
    }
    await driver.define(req.vm);
    if (req.start) await driver.start(req.vm.id);
    return { message: `VM defined${req.disks === 'fresh' ? ' with fresh disks' : ''}${req.start ? ' and running' : ''}` };
  },

  async startVm(req, { driver }) {
    await driver.start(req.vm.id);
    return { message: 'VM running' };
  },

  async stopVm(req, { driver }) {
    await driver.stop(req.vm.id);
    return { message: 'VM stopped' };
  },

  async deleteVm(req, { driver }) {
    const vm = await find(driver, req.vm.id);
    // A discarded copy is not powered off politely: undefine ends it at once.
    if (vm && vm.state !== 'Stopped' && !req.discard) await driver.stop(req.vm.id);
    await driver.undefine(req.vm.id, { deleteLocalDisks: req.deleteLocalDisks, deleteSharedDisks: req.deleteSharedDisks ?? false });
    const disks = req.deleteSharedDisks ? ' with all its disks' : req.deleteLocalDisks ? ' with its local disks' : '';
    return { message: vm ? `VM deleted${disks}` : 'VM was not here' };
  },

  async prepareIncoming(req, { driver }) {
    const endpoint = await driver.prepareIncoming(req.vm, {
      blockMigration: req.blockMigration,
      ...(req.tuning ? { tuning: req.tuning } : {}),
      ...(req.insecureMigration ? { plaintext: true } : {}),
    });
    return { message: `waiting for the VM at ${endpoint.migrationUri} ${streamSecurity(endpoint, req.insecureMigration === true, driver.kind)}`, endpoint };
  },

  async migrate(req, ctx) {
    const { driver } = ctx;
    const id = req.vm.id;
    if (!ctx.reached('migrationStarted')) {
      await driver.startMigration(id, req.to, req.tuning, { blockMigration: req.blockMigration });
      await ctx.checkpoint('migrationStarted');
    }
    ctx.releaseVm();
    for (;;) {
      const st = await driver.migrationStatus(id);
      ctx.progress({ migration: st });
      switch (st.state) {
        case 'completed': {
          // Where the guest's heartbeat stood when it left: the target's must go on from there.
          const heartbeat = (await find(driver, id))?.heartbeat;
          return {
            message: `migrated in ${fmtMs(st.totalTimeMs)}, downtime ${fmtMs(st.downtimeMs)}, ${st.iteration} passes${st.tls === undefined ? '' : st.tls ? ', over TLS' : ', in plaintext'}`,
            ...(heartbeat !== undefined ? { guestHeartbeat: heartbeat } : {}),
          };
        }
        case 'failed':
          throw new OperationFailure(`migration failed: ${st.error ?? 'no reason given'}`, st.errorTransient ?? true);
        case 'cancelled':
          throw new OperationFailure('migration cancelled', false);
        case 'none':
          throw new OperationFailure('the driver has no migration for this VM any more', true);
        default:
          await untilNextLook(ctx, id);
      }
    }
  },

  async abortMigration(req, { driver }) {
    await driver.abortMigration(req.vm.id);
    return { message: 'migration cancelled; the VM runs on here' };
  },

  async completeIncoming(req, ctx) {
    const deadline = Date.now() + ARRIVAL_WAIT_MS;
    for (;;) {
      try {
        await ctx.driver.completeIncoming(req.vm.id);
        return { message: 'VM running on the target' };
      } catch (err) {
        if (!(err instanceof NotArrivedYet) || Date.now() > deadline) throw err;
        ctx.progress({ message: 'waiting for the last of the migrated state to arrive' });
        await sleep(ctx.pollMs, undefined, { signal: ctx.signal });
      }
    }
  },

  async resumeSource(req, { driver }) {
    await driver.resumeSource(req.vm.id);
    return { message: 'VM running again on the source' };
  },

  async copyDisks(req, ctx) {
    const here = await find(ctx.driver, req.vm.id);
    if (here && here.state !== 'Stopped') {
      throw new OperationFailure(`VM is ${here.state} here: its disks will not be overwritten`, false);
    }
    const disks = req.vm.disks.filter((d) => d.storage === 'Local');
    const total: CopyProgress = { totalBytes: disks.reduce((n, d) => n + d.sizeBytes, 0), copiedBytes: 0 };
    ctx.progress({ copy: { ...total } });
    let done = 0;
    for (const disk of disks) {
      const reader = await ctx.fetchDisk(req.from.endpoint, req.vm.id, disk.name, ctx.signal);
      // Streams may be compact (sparse, qcow2): report progress in the disk's own bytes.
      const counted = countBytes(reader.stream, (n) => {
        const part = reader.sizeBytes > 0 ? Math.min(1, n / reader.sizeBytes) : 1;
        ctx.progress({ copy: { totalBytes: total.totalBytes, copiedBytes: done + Math.floor(part * disk.sizeBytes) } });
      });
      await ctx.driver.writeDisk(req.vm, disk.name, counted, reader.sizeBytes);
      done += disk.sizeBytes;
      ctx.progress({ copy: { totalBytes: total.totalBytes, copiedBytes: done } });
    }
    return { message: disks.length ? `copied ${disks.length} local disk(s) from ${req.from.endpoint}` : 'no local disks to copy' };
  },

  async hotplug(req, { driver }) {
    await driver.hotplug(req.vm.id, { cpu: req.cpu, memoryBytes: req.memoryBytes });
    return { message: `VM now has ${req.cpu} CPU(s) and ${Math.round(req.memoryBytes / 2 ** 20)} MiB` };
  },

  async verify(req, ctx) {
    const { driver } = ctx;
    const first = await find(driver, req.vm.id);
    if (!req.expectRunning) {
      if (!first) throw new OperationFailure(`VM is not defined here`, false);
      if (first.state !== 'Stopped') throw new OperationFailure(`VM is ${first.state}, expected Stopped`, false);
      return { message: 'VM defined and stopped' };
    }
    const deadline = Date.now() + req.windowMs;
    const step = Math.max(20, Math.min(250, Math.floor(req.windowMs / 10)));
    for (let vm = first; ; vm = await find(driver, req.vm.id)) {
      if (!vm) throw new OperationFailure('VM is not defined here', false);
      if (vm.state !== 'Running') throw new OperationFailure(`VM is ${vm.state}, expected Running`, false);
      const above = req.heartbeatAbove;
      if (above !== undefined && vm.heartbeat !== undefined && vm.heartbeat < above) {
        // Trying again can help: the source still has the guest's disk.
        throw new OperationFailure(`the guest restarted here: heartbeat ${vm.heartbeat}, it was at ${above} on the source`, true);
      }
      const beyond = Math.max(first?.heartbeat ?? -1, above ?? -1);
      if (vm.heartbeat !== undefined && vm.heartbeat > beyond) {
        if (above !== undefined) return { message: `guest heartbeat ${vm.heartbeat} goes on from ${above} on the source` };
        return { message: req.acceptConsole ? `the guest, not ready on the source, heartbeats here (${vm.heartbeat})` : `VM running; guest heartbeat ${vm.heartbeat}` };
      }
      // A guest that was still booting on the source shows it runs by what it writes to its console.
      if (req.acceptConsole && vm.consoleBytes !== undefined && first?.consoleBytes !== undefined && vm.consoleBytes > first.consoleBytes) {
        return { message: `the guest, not ready on the source, runs here: its console output grows (${first.consoleBytes} → ${vm.consoleBytes} bytes)` };
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        // What the console did tells a guest that hangs from one that prints but not its heartbeat.
        const seen = vm.consoleBytes === undefined ? ', console output not visible' : vm.consoleBytes === first?.consoleBytes ? `, console output unchanged at ${vm.consoleBytes} bytes` : `, console output ${first?.consoleBytes ?? 0} → ${vm.consoleBytes} bytes`;
        // A guest that booted slowly may still come up: trying again can help.
        throw new OperationFailure(`guest made no progress in ${req.windowMs} ms (heartbeat ${vm.heartbeat ?? 'none'}${seen})`, true);
      }
      await sleep(Math.min(step, left), undefined, { signal: ctx.signal });
    }
  },
};

function countBytes(source: Readable, onBytes: (total: number) => void): Readable {
  let n = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      onBytes(n);
      cb(null, chunk);
    },
  });
  source.on('error', (err) => counter.destroy(err));
  return source.pipe(counter);
}

export function runOperation(req: OperationRequest, ctx: OperationContext): Promise<OperationOutcome> {
  return (handlers[req.kind] as Handler<typeof req.kind>)(req as never, ctx);
}
