// The operation executor: runs OperationRequests against the driver, exactly once per opId.
//
// - An operation is recorded in `<stateDir>/operations/<opId>.json` before it acts; a PUT for
//   a known opId answers the recorded status (the controller may re-send after a crash).
// - Operations on one VM run one after another; different VMs run in parallel. A migration
//   holds its VM only while it starts, so it can be aborted while it runs.
// - After a restart, operations recorded as Running run again (their handlers are idempotent)
//   or, for a migration already started, re-attach to the driver's migration.
import { EventEmitter } from 'node:events';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DriverError, type DiskReader, type Driver } from '../drivers/driver';
import { componentLogger } from '../log';
import { readJsonFile, writeFileAtomic } from '../fs/atomicFile';
import { AgentError, InvalidRequest, conflict, toOperationError } from './errors';
import type { AgentMetrics } from './metrics';
import { runOperation } from './operationKinds';
import type { OperationRequest, OperationStatus } from '../protocol/operations';
import { compareResubmission, opIdProblem, requestName, validateOperationRequest } from './requestValidation';
import { VmLocks } from '../vmLocks';

const log = componentLogger('operations');

export interface OperationRecord {
  opId: string;
  request: OperationRequest;
  status: OperationStatus;
  /** Steps this operation got past (e.g. migrate: `migrationStarted`), for a resume after a restart. */
  checkpoints?: string[];
}

export interface ExecutorOptions {
  driver: Driver;
  stateDir: string;
  fetchDisk(endpoint: string, vmId: string, disk: string, signal: AbortSignal): Promise<DiskReader>;
  /** How often a running migration is polled (ms). */
  pollMs?: number;
  /** Finished records older than this are forgotten (ms; default 7 days). */
  retentionMs?: number;
  /** fsync operation records (default true; benchmarks on tmpfs may turn it off). */
  fsync?: boolean;
  metrics?: AgentMetrics;
}

export interface ExecutorEvents {
  finished: [status: OperationStatus, request: OperationRequest];
}

const DAY_MS = 24 * 3600 * 1000;

export class OperationExecutor extends EventEmitter<ExecutorEvents> {
  private readonly records = new Map<string, OperationRecord>();
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Writes of one record happen in order, each writing the record as it is then. */
  private readonly writes = new Map<string, Promise<void>>();
  private readonly running = new Set<Promise<void>>();
  private readonly locks = new VmLocks();
  private readonly abort = new AbortController();
  private readonly dir: string;
  private closing = false;
  private sweeper?: NodeJS.Timeout;

  private constructor(private readonly opts: ExecutorOptions) {
    super();
    this.dir = join(opts.stateDir, 'operations');
  }

  /** Load recorded operations, forget old ones, resume those that were running. */
  static async open(opts: ExecutorOptions): Promise<OperationExecutor> {
    const ex = new OperationExecutor(opts);
    await ex.load();
    ex.sweeper = setInterval(() => void ex.sweep(), Math.max(60_000, Math.min(ex.retentionMs, DAY_MS) / 24));
    ex.sweeper.unref();
    // In the order they were accepted: operations on one VM queue up as they did before.
    const unfinished = [...ex.records.values()].filter((r) => r.status.state === 'Running');
    unfinished.sort((x, y) => x.status.startedAt.localeCompare(y.status.startedAt));
    for (const rec of unfinished) {
      log.info({ opId: rec.opId, kind: rec.request.kind, vm: rec.request.vm.id }, 'resuming operation after restart');
      ex.launch(rec);
    }
    return ex;
  }

  /** Start the operation `opId`, or answer its status when it is already known. */
  async submit(opId: string, body: unknown): Promise<OperationStatus> {
    if (this.closing) throw new AgentError('agent is shutting down', 503, true);
    const badId = opIdProblem(opId);
    if (badId) throw new InvalidRequest('operation id', [badId]);
    const checked = validateOperationRequest(body);
    if ('problems' in checked) throw new InvalidRequest(requestName(body), checked.problems);
    const request = checked.request;

    const known = this.records.get(opId);
    if (known) return this.resubmit(known, request);

    const rec: OperationRecord = {
      opId,
      request,
      status: { opId, kind: request.kind, state: 'Running', startedAt: new Date().toISOString() },
    };
    // Visible at once, so a concurrent PUT of the same opId finds it instead of acting twice.
    this.records.set(opId, rec);
    try {
      await this.persist(rec);
    } catch (err) {
      this.records.delete(opId);
      throw new AgentError(`cannot record operation ${opId}: ${(err as Error).message}`, 503, true);
    }
    log.debug({ opId, kind: request.kind, vm: request.vm.id }, 'operation accepted');
    this.launch(rec);
    return this.snapshot(rec);
  }

  get(opId: string): OperationStatus | undefined {
    const rec = this.records.get(opId);
    return rec && this.snapshot(rec);
  }

  /** The status once the operation leaves Running, or when `waitMs` has passed. */
  async waitFor(opId: string, waitMs: number): Promise<OperationStatus | undefined> {
    const rec = this.records.get(opId);
    if (!rec) return undefined;
    if (rec.status.state === 'Running' && waitMs > 0 && !this.closing) {
      await new Promise<void>((resolve) => {
        const set = this.waiters.get(opId) ?? new Set();
        this.waiters.set(opId, set);
        const done = () => {
          clearTimeout(timer);
          set.delete(done);
          if (set.size === 0 && this.waiters.get(opId) === set) this.waiters.delete(opId);
          resolve();
        };
        const timer = setTimeout(done, waitMs);
        set.add(done);
      });
    }
    return this.snapshot(rec);
  }

  /** Stop acting; operations still running stay recorded as Running and resume on the next start. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.sweeper);
    this.abort.abort();
    for (const set of this.waiters.values()) for (const w of [...set]) w();
    await Promise.race([Promise.allSettled([...this.running]), new Promise((r) => setTimeout(r, 5000).unref())]);
  }

  private async resubmit(rec: OperationRecord, request: OperationRequest): Promise<OperationStatus> {
    switch (compareResubmission(rec.request, request)) {
      case 'same':
        return this.snapshot(rec);
      case 'conflict':
        throw conflict(`operation ${rec.opId} exists with a different request; only a migration's tuning may change`);
      case 'tuning': {
        if (request.kind !== 'migrate' || rec.request.kind !== 'migrate') return this.snapshot(rec);
        if (rec.status.state !== 'Running') return this.snapshot(rec);
        await this.opts.driver.tuneMigration(request.vm.id, request.tuning);
        rec.request = { ...rec.request, tuning: request.tuning };
        await this.persist(rec);
        log.info({ opId: rec.opId, tuning: request.tuning }, 'migration tuning changed');
        return this.snapshot(rec);
      }
    }
  }

  /** When an operation on VM `vmId` last ran here (ms since epoch), Infinity while one runs. */
  lastActivity(vmId: string): number | undefined {
    let last: number | undefined;
    for (const rec of this.records.values()) {
      if (rec.request.vm.id !== vmId) continue;
      if (rec.status.state === 'Running') return Infinity;
      last = Math.max(last ?? 0, Date.parse(rec.status.finishedAt ?? rec.status.startedAt));
    }
    return last;
  }

  /** Runs the agent's own housekeeping on a VM in turn with the operations on it. */
  async housekeep<T>(vmId: string, fn: () => Promise<T>): Promise<T | undefined> {
    const release = await this.locks.acquire(vmId);
    try {
      return this.closing ? undefined : await fn();
    } finally {
      release();
    }
  }

  private launch(rec: OperationRecord): void {
    const p = this.execute(rec).finally(() => this.running.delete(p));
    this.running.add(p);
  }

  private async execute(rec: OperationRecord): Promise<void> {
    const vmId = rec.request.vm.id;
    const release = await this.locks.acquire(vmId);
    let released = false;
    const releaseVm = () => {
      if (!released) {
        released = true;
        release();
      }
    };
    const kind = { kind: rec.request.kind };
    const m = this.opts.metrics;
    m?.operationsInFlight.inc(kind);
    try {
      if (this.closing) return;
      const outcome = await runOperation(rec.request, {
        driver: this.opts.driver,
        signal: this.abort.signal,
        pollMs: this.opts.pollMs ?? 250,
        releaseVm,
        progress: (u) => {
          if (u.migration) rec.status.migration = u.migration;
          if (u.copy) rec.status.copy = u.copy;
          if (u.message) rec.status.message = u.message;
        },
        reached: (step) => rec.checkpoints?.includes(step) === true,
        checkpoint: async (step) => {
          rec.checkpoints = [...(rec.checkpoints ?? []), step];
          await this.persist(rec);
        },
        fetchDisk: this.opts.fetchDisk,
      });
      if (this.closing) return;
      rec.status = { ...rec.status, state: 'Succeeded', message: outcome.message, ...(outcome.endpoint ? { endpoint: outcome.endpoint } : {}), ...(outcome.guestHeartbeat !== undefined ? { guestHeartbeat: outcome.guestHeartbeat } : {}) };
    } catch (err) {
      // Shutting down: leave it Running so the next agent resumes it.
      if (this.closing) return;
      rec.status = { ...rec.status, state: 'Failed', error: toOperationError(err) };
      rec.status.message = rec.status.error!.message;
      if (err instanceof DriverError) m?.driverErrors.inc({ driver: this.opts.driver.kind, kind: rec.request.kind });
    } finally {
      releaseVm();
      m?.operationsInFlight.dec(kind);
    }
    rec.status.finishedAt = new Date().toISOString();
    const result = { kind: rec.request.kind, result: rec.status.state };
    m?.operations.inc(result);
    m?.operationDuration.observe(result, Math.max(0, (Date.parse(rec.status.finishedAt) - Date.parse(rec.status.startedAt)) / 1000));
    try {
      await this.persist(rec);
    } catch (err) {
      log.error({ err, opId: rec.opId }, 'cannot record the outcome of an operation; it will run again after a restart');
    }
    const lvl = rec.status.state === 'Succeeded' ? 'debug' : 'info';
    log[lvl]({ opId: rec.opId, kind: rec.request.kind, vm: vmId, state: rec.status.state, error: rec.status.error }, 'operation finished');
    for (const w of [...(this.waiters.get(rec.opId) ?? [])]) w();
    this.emit('finished', this.snapshot(rec), rec.request);
  }

  private get retentionMs(): number {
    return this.opts.retentionMs ?? 7 * DAY_MS;
  }

  /** Forget finished operations older than the retention time. */
  private async sweep(): Promise<void> {
    const cutoff = Date.now() - this.retentionMs;
    for (const rec of [...this.records.values()]) {
      if (rec.status.finishedAt && Date.parse(rec.status.finishedAt) < cutoff) {
        this.records.delete(rec.opId);
        await rm(join(this.dir, `${rec.opId}.json`), { force: true }).catch(() => undefined);
      }
    }
  }

  private snapshot(rec: OperationRecord): OperationStatus {
    return structuredClone(rec.status);
  }

  private persist(rec: OperationRecord): Promise<void> {
    const prev = this.writes.get(rec.opId) ?? Promise.resolve();
    const next = prev.then(() => writeFileAtomic(join(this.dir, `${rec.opId}.json`), JSON.stringify(rec), { fsync: this.opts.fsync ?? true }));
    const settled = next.catch(() => undefined);
    this.writes.set(rec.opId, settled);
    void settled.then(() => {
      if (this.writes.get(rec.opId) === settled) this.writes.delete(rec.opId);
    });
    return next;
  }

  private async load(): Promise<void> {
    let files: string[] = [];
    try {
      files = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const cutoff = Date.now() - this.retentionMs;
    for (const f of files) {
      const path = join(this.dir, f);
      if (!f.endsWith('.json')) {
        // A temporary file a crash left behind.
        if (f.includes('.json.tmp-')) await rm(path, { force: true });
        continue;
      }
      let rec: OperationRecord | undefined;
      try {
        rec = await readJsonFile<OperationRecord>(path);
      } catch (err) {
        log.warn({ err, path }, 'unreadable operation record; ignoring it');
        continue;
      }
      if (!rec) continue;
      const finished = rec.status.finishedAt ? Date.parse(rec.status.finishedAt) : undefined;
      if (finished !== undefined && finished < cutoff) {
        await rm(path, { force: true });
        continue;
      }
      this.records.set(rec.opId, rec);
    }
    if (files.length) log.debug({ records: this.records.size }, 'operation records loaded');
  }
}
