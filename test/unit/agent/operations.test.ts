// The operation executor over a real sim host: exactly once per opId, records that survive a
// restart, per-VM ordering, error classification.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../../src/agent/client';
import { writeFileAtomic } from '../../../src/fs/atomicFile';
import { OperationExecutor, type OperationRecord } from '../../../src/agent/operations';
import type { OperationRequest, OperationStatus } from '../../../src/protocol/operations';
import type { HostConfig } from '../../../src/drivers/driver';
import type { MigrationTuning } from '../../../src/protocol/migration';
import type { VmSpec } from '../../../src/protocol/vm';
import { SIM_ANNOTATIONS, SimDriver, createSimImage, readSimDiskHeader, simDiskPath, type SimDriverOptions } from '../../../src/drivers/sim';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

let work: string;
let portBase = 24000 + (process.pid % 1500) * 20;
const cleanups: (() => Promise<void>)[] = [];

function host(node: string): HostConfig {
  const ports: [number, number] = [portBase, portBase + 4];
  portBase += 5;
  const dir = join(work, `${node}-${ports[0]}`);
  return {
    nodeName: node,
    stateDir: join(dir, 'state'),
    localDir: join(dir, 'local'),
    sharedDir: join(work, 'shared'),
    imagesDir: join(work, 'images'),
    migrationAddress: '127.0.0.1',
    migrationPorts: ports,
    capacity: { cpu: 4, memoryBytes: 8 * GiB },
    storage: ['Local', 'SharedFile'],
  };
}

async function sim(h: HostConfig, opts: Partial<SimDriverOptions> = {}): Promise<SimDriver> {
  const d = await SimDriver.open(h, { timeScale: 10, ...opts });
  cleanups.push(() => d.close());
  return d;
}

const nowhere = new AgentClient({ token: () => 'unused' });

async function executor(h: HostConfig, driver: SimDriver, extra: { retentionMs?: number; pollMs?: number } = {}): Promise<OperationExecutor> {
  const ex = await OperationExecutor.open({
    driver,
    stateDir: h.stateDir,
    pollMs: 20,
    fetchDisk: (ep, vm, disk, signal) => nowhere.readDisk(ep, vm, disk, signal),
    ...extra,
  });
  cleanups.push(() => ex.close());
  return ex;
}

let n = 0;
function vm(annotations: Record<string, string> = {}, storage: 'Local' | 'SharedFile' = 'SharedFile'): VmSpec {
  n += 1;
  return { id: `default_op-${n}`, uid: `uid-op-${n}`, image: 'tiny', cpu: 1, memoryBytes: 256 * MiB, disks: [{ name: 'root', sizeBytes: GiB, storage }], annotations };
}

const tuning = (over: Partial<MigrationTuning> = {}): MigrationTuning => ({ bandwidthMiBps: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false, ...over });

async function done(ex: OperationExecutor, opId: string, waitMs = 10_000): Promise<OperationStatus> {
  const st = await ex.waitFor(opId, waitMs);
  if (!st) throw new Error(`no operation ${opId}`);
  return st;
}

async function submitDone(ex: OperationExecutor, opId: string, req: OperationRequest): Promise<OperationStatus> {
  await ex.submit(opId, req);
  return done(ex, opId);
}

const generation = async (h: HostConfig, spec: VmSpec) => (await readSimDiskHeader(simDiskPath(h, spec.id, spec.disks[0]!)))?.generation;
const stateOf = async (d: SimDriver, id: string) => (await d.list()).find((v) => v.id === id)?.state;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vmove-ops-'));
  await createSimImage(join(work, 'images'), 'tiny');
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

test('an opId acts once, even when sent twice at the same moment and again later', async () => {
  const h = host('a');
  const d = await sim(h);
  const ex = await executor(h, d);
  const spec = vm();
  expect((await submitDone(ex, 'create-1', { kind: 'ensureVm', vm: spec, disks: 'keep', start: false })).state).toBe('Succeeded');

  const start: OperationRequest = { kind: 'startVm', vm: spec };
  const [s1, s2] = await Promise.all([ex.submit('start-1', start), ex.submit('start-1', start)]);
  expect(s2.startedAt).toBe(s1.startedAt);
  await done(ex, 'start-1');
  await submitDone(ex, 'stop-1', { kind: 'stopVm', vm: spec });
  // A controller that crashed re-sends the start: the VM stays stopped, booted only once.
  expect((await ex.submit('start-1', start)).state).toBe('Succeeded');
  expect(await stateOf(d, spec.id)).toBe('Stopped');
  expect(await generation(h, spec)).toBe(1);
});

test('another body for a known opId is a conflict; a migration may change only its tuning', async () => {
  const [ha, hb] = [host('a'), host('b')];
  const [a, b] = [await sim(ha), await sim(hb)];
  const [exA, exB] = [await executor(ha, a), await executor(hb, b)];
  const spec = vm();
  await submitDone(exA, 'create', { kind: 'ensureVm', vm: spec, disks: 'keep', start: true });
  await expect(exA.submit('create', { kind: 'ensureVm', vm: { ...spec, cpu: 2 }, disks: 'keep', start: true })).rejects.toMatchObject({ status: 409 });

  const prep = await submitDone(exB, 'prep', { kind: 'prepareIncoming', vm: spec, blockMigration: false });
  const migrate: OperationRequest = { kind: 'migrate', vm: spec, to: prep.endpoint!, tuning: tuning({ bandwidthMiBps: 1 }), blockMigration: false };
  await exA.submit('mig', migrate);
  // Capped at 1 MiB/s, 256 MiB take minutes: still running.
  expect((await exA.waitFor('mig', 300))?.state).toBe('Running');
  await expect(exA.submit('mig', { ...migrate, blockMigration: true })).rejects.toMatchObject({ status: 409 });
  // The convergence ladder lifts the cap: the link's own speed now.
  expect((await exA.submit('mig', { ...migrate, tuning: tuning({ bandwidthMiBps: 0 }) })).state).toBe('Running');
  const st = await done(exA, 'mig');
  expect(st).toMatchObject({ state: 'Succeeded', migration: { state: 'completed' } });
});

/** Two sim hosts with executors: a VM running on a, its incoming copy prepared on b. */
/** `source` may dress up host a's driver; `sourcePollMs` is its executor's poll. */
async function runningOnAIncomingOnB(o: { source?: (a: SimDriver) => SimDriver; sourcePollMs?: number } = {}) {
  const [ha, hb] = [host('a'), host('b')];
  const [a, b] = [await sim(ha), await sim(hb)];
  const [exA, exB] = [await executor(ha, o.source?.(a) ?? a, o.sourcePollMs ? { pollMs: o.sourcePollMs } : {}), await executor(hb, b)];
  const spec = vm();
  await submitDone(exA, 'create', { kind: 'ensureVm', vm: spec, disks: 'keep', start: true });
  const prep = await submitDone(exB, 'prep', { kind: 'prepareIncoming', vm: spec, blockMigration: false });
  return { b, exA, exB, spec, prep };
}

test('after a live migration the guest must go on from its heartbeat on the source; a restarted guest fails verification', async () => {
  const { exA, exB, spec, prep } = await runningOnAIncomingOnB();
  const mig = await submitDone(exA, 'mig', { kind: 'migrate', vm: spec, to: prep.endpoint!, tuning: tuning(), blockMigration: false });
  expect(mig).toMatchObject({ state: 'Succeeded', guestHeartbeat: expect.any(Number) });
  await submitDone(exB, 'complete', { kind: 'completeIncoming', vm: spec });
  const verify = { kind: 'verify', vm: spec, windowMs: 5_000, expectRunning: true } as const;
  expect(await submitDone(exB, 'verify', { ...verify, heartbeatAbove: mig.guestHeartbeat! })).toMatchObject({ state: 'Succeeded' });
  // The same guest, had it booted again on the target, would count from the start.
  expect(await submitDone(exB, 'verify-restarted', { ...verify, heartbeatAbove: mig.guestHeartbeat! + 1_000 })).toMatchObject({
    state: 'Failed',
    error: { transient: true, message: expect.stringMatching(/restarted here/) },
  });
});

test('a guest migrated while it boots: migrate reports no heartbeat, and a verify that accepts what can be seen passes once it comes up', async () => {
  const [ha, hb] = [host('a'), host('b')];
  const [a, b] = [await sim(ha), await sim(hb)];
  const [exA, exB] = [await executor(ha, a), await executor(hb, b)];
  // 10 simulated seconds of boot: one real second at this time scale.
  const spec = vm({ [SIM_ANNOTATIONS.bootSeconds]: '10' });
  await submitDone(exA, 'create', { kind: 'ensureVm', vm: spec, disks: 'keep', start: true });
  const prep = await submitDone(exB, 'prep', { kind: 'prepareIncoming', vm: spec, blockMigration: false });
  const mig = await submitDone(exA, 'mig', { kind: 'migrate', vm: spec, to: prep.endpoint!, tuning: tuning(), blockMigration: false });
  expect(mig.state).toBe('Succeeded');
  expect(mig.guestHeartbeat).toBeUndefined();
  await submitDone(exB, 'complete', { kind: 'completeIncoming', vm: spec });
  const verified = await submitDone(exB, 'verify', { kind: 'verify', vm: spec, windowMs: 10_000, expectRunning: true, acceptConsole: true });
  expect(verified).toMatchObject({ state: 'Succeeded', message: expect.stringMatching(/not ready on the source, heartbeats here/) });
});

test('the end of a migration is noticed when the driver reports it, not at the next poll', async () => {
  // The source is paused from the end of pre-copy until the target runs: every poll interval
  // the agent sleeps through is downtime the guest sees. Here the poll would take a minute.
  let reported = 0;
  const reportsEnd = (a: SimDriver): SimDriver =>
    Object.assign(a, {
      migrationMayHaveEnded: async (id: string, ms: number): Promise<void> => {
        for (const until = Date.now() + ms; Date.now() < until; await new Promise((r) => setTimeout(r, 10))) {
          if (!['setup', 'active'].includes((await a.migrationStatus(id)).state)) return void reported++;
        }
      },
    });
  const { exA, spec, prep } = await runningOnAIncomingOnB({ source: reportsEnd, sourcePollMs: 60_000 });
  await exA.submit('mig', { kind: 'migrate', vm: spec, to: prep.endpoint!, tuning: tuning(), blockMigration: false });
  expect(await exA.waitFor('mig', 5_000)).toMatchObject({ state: 'Succeeded' });
  expect(reported).toBe(1);
});

test('completing an incoming VM waits for the last of its state to arrive instead of failing', async () => {
  const { b, exA, exB, spec, prep } = await runningOnAIncomingOnB();
  const migrate: OperationRequest = { kind: 'migrate', vm: spec, to: prep.endpoint!, tuning: tuning({ bandwidthMiBps: 2 }), blockMigration: false };
  await exA.submit('mig', migrate);
  // Asked too early (the source's report raced the target's load): it waits, saying so.
  await exB.submit('complete', { kind: 'completeIncoming', vm: spec });
  const waiting = await exB.waitFor('complete', 300);
  expect(waiting).toMatchObject({ state: 'Running', message: expect.stringMatching(/waiting for the last of the migrated state/) });
  await exA.submit('mig', { ...migrate, tuning: tuning() });
  expect((await done(exA, 'mig')).state).toBe('Succeeded');
  expect(await done(exB, 'complete')).toMatchObject({ state: 'Succeeded' });
  expect(await stateOf(b, spec.id)).toBe('Running');
});

test('after a restart, an operation recorded as Running runs (again)', async () => {
  const h = host('a');
  const d = await sim(h);
  const spec = vm();
  const first = await executor(h, d);
  await submitDone(first, 'create', { kind: 'ensureVm', vm: spec, disks: 'keep', start: false });
  await first.close();
  // The agent recorded a start and died before acting on it.
  const rec: OperationRecord = {
    opId: 'start-after-crash',
    request: { kind: 'startVm', vm: spec },
    status: { opId: 'start-after-crash', kind: 'startVm', state: 'Running', startedAt: new Date().toISOString() },
  };
  await writeFileAtomic(join(h.stateDir, 'operations', 'start-after-crash.json'), JSON.stringify(rec));
  const second = await executor(h, d);
  expect(await done(second, 'start-after-crash')).toMatchObject({ state: 'Succeeded', startedAt: rec.status.startedAt });
  expect(await stateOf(d, spec.id)).toBe('Running');
  expect((await second.get('create'))?.state).toBe('Succeeded');
});

test('after a restart, a rebuild past its disk step does not wipe the disks its guest booted from', async () => {
  const h = host('a');
  const d = await sim(h);
  const spec = vm({}, 'Local');
  const ex1 = await executor(h, d);
  const rebuild: OperationRequest = { kind: 'ensureVm', vm: spec, disks: 'fresh', start: true };
  await submitDone(ex1, 'rebuild-1', rebuild);
  expect(await generation(h, spec)).toBe(1);
  // Asked again for fresh disks while the guest runs on them: refused, nothing touched.
  expect(await submitDone(ex1, 'rebuild-2', rebuild)).toMatchObject({ state: 'Failed', error: { transient: false, message: expect.stringMatching(/Running here/) } });
  await ex1.close();
  // The agent died after the disk step and the boot, before recording the outcome.
  const rec: OperationRecord = {
    opId: 'rebuild-3',
    request: rebuild,
    status: { opId: 'rebuild-3', kind: 'ensureVm', state: 'Running', startedAt: new Date().toISOString() },
    checkpoints: ['disks'],
  };
  await writeFileAtomic(join(h.stateDir, 'operations', 'rebuild-3.json'), JSON.stringify(rec));
  const ex2 = await executor(h, d);
  expect((await done(ex2, 'rebuild-3')).state).toBe('Succeeded');
  expect(await generation(h, spec)).toBe(1);
  expect(await stateOf(d, spec.id)).toBe('Running');
});

test('after a restart, a migration in flight is watched again, not started again', async () => {
  const [ha, hb] = [host('a'), host('b')];
  const [a, b] = [await sim(ha), await sim(hb)];
  const exB = await executor(hb, b);
  const spec = vm();
  const exA1 = await executor(ha, a);
  await submitDone(exA1, 'create', { kind: 'ensureVm', vm: spec, disks: 'keep', start: true });
  const prep = await submitDone(exB, 'prep', { kind: 'prepareIncoming', vm: spec, blockMigration: false });
  const migrate: OperationRequest = { kind: 'migrate', vm: spec, to: prep.endpoint!, tuning: tuning({ bandwidthMiBps: 2 }), blockMigration: false };
  await exA1.submit('mig', migrate);
  const before = await exA1.waitFor('mig', 200);
  expect(before?.state).toBe('Running');
  // The agent restarts; the hypervisor (this driver) keeps migrating meanwhile.
  await exA1.close();
  const exA2 = await executor(ha, a);
  const during = await exA2.waitFor('mig', 200);
  expect(during?.state).toBe('Running');
  expect(during!.migration!.memoryTransferredBytes).toBeGreaterThan(before!.migration?.memoryTransferredBytes ?? 0);
  expect(during!.startedAt).toBe(before!.startedAt);
  await exA2.submit('mig', { ...migrate, tuning: tuning() });
  expect(await done(exA2, 'mig')).toMatchObject({ state: 'Succeeded', migration: { state: 'completed', iteration: expect.any(Number) } });
  expect(await stateOf(a, spec.id)).toBe('Migrated');
});

test('operations on one VM wait for each other; other VMs do not wait', async () => {
  const h = host('a');
  const d = await sim(h, { timeScale: 1 });
  const ex = await executor(h, d);
  // This guest hangs for 30 s after boot: its verify runs its whole window.
  const slow = vm({ [SIM_ANNOTATIONS.failTransientAt]: 'verify' });
  const other = vm();
  await submitDone(ex, 'slow-create', { kind: 'ensureVm', vm: slow, disks: 'keep', start: true });
  await submitDone(ex, 'other-create', { kind: 'ensureVm', vm: other, disks: 'keep', start: false });

  await ex.submit('slow-verify', { kind: 'verify', vm: slow, windowMs: 1_000, expectRunning: true });
  await ex.submit('slow-stop', { kind: 'stopVm', vm: slow });
  await ex.submit('other-start', { kind: 'startVm', vm: other });
  expect((await done(ex, 'other-start')).state).toBe('Succeeded');
  expect(ex.get('slow-verify')?.state).toBe('Running');
  expect(ex.get('slow-stop')?.state).toBe('Running');
  // The stop waited: verify saw a running (hung) guest, not a stopped one.
  expect(await done(ex, 'slow-verify')).toMatchObject({ state: 'Failed', error: { transient: true, message: expect.stringMatching(/no progress/) } });
  expect((await done(ex, 'slow-stop')).state).toBe('Succeeded');
});

test('failures say whether trying again may help', async () => {
  const h = host('a');
  const d = await sim(h);
  const ex = await executor(h, d);
  const missing = vm();
  expect(await submitDone(ex, 'start-missing', { kind: 'startVm', vm: missing })).toMatchObject({
    state: 'Failed',
    error: { transient: false, message: expect.stringMatching(/no VM/) },
  });
  const flaky = vm({ [SIM_ANNOTATIONS.failTransientAt]: 'startVm' });
  await submitDone(ex, 'flaky-create', { kind: 'ensureVm', vm: flaky, disks: 'keep', start: false });
  expect(await submitDone(ex, 'flaky-start', { kind: 'startVm', vm: flaky })).toMatchObject({ state: 'Failed', error: { transient: true } });
  const crashing = vm({ [SIM_ANNOTATIONS.failAt]: 'verify' });
  await submitDone(ex, 'crash-create', { kind: 'ensureVm', vm: crashing, disks: 'keep', start: true });
  expect(await submitDone(ex, 'crash-verify', { kind: 'verify', vm: crashing, windowMs: 500, expectRunning: true })).toMatchObject({
    state: 'Failed',
    error: { transient: false, message: expect.stringMatching(/Crashed/) },
  });
});

test('malformed requests are refused before anything is recorded', async () => {
  const h = host('a');
  const d = await sim(h);
  const ex = await executor(h, d);
  const spec = vm();
  await expect(ex.submit('../escape', { kind: 'startVm', vm: spec })).rejects.toMatchObject({ status: 400 });
  await expect(ex.submit('ok-id', { kind: 'launchMissiles', vm: spec })).rejects.toMatchObject({ status: 400 });
  await expect(ex.submit('ok-id', { kind: 'ensureVm', vm: { ...spec, id: 'a/b' }, disks: 'keep', start: true })).rejects.toMatchObject({ status: 400 });
  await expect(ex.submit('ok-id', { kind: 'migrate', vm: spec, to: {}, tuning: {}, blockMigration: false })).rejects.toMatchObject({
    status: 400,
    message: expect.stringMatching(/to.migrationUri.*tuning.bandwidthMiBps/),
  });
  expect(ex.get('ok-id')).toBeUndefined();
  expect(await readdir(join(h.stateDir, 'operations')).catch(() => [])).toEqual([]);
});

test('finished operations are forgotten after the retention time', async () => {
  const h = host('a');
  const d = await sim(h);
  const spec = vm();
  const first = await executor(h, d);
  await submitDone(first, 'create', { kind: 'ensureVm', vm: spec, disks: 'keep', start: false });
  await first.close();
  await new Promise((r) => setTimeout(r, 20));
  const second = await executor(h, d, { retentionMs: 10 });
  expect(second.get('create')).toBeUndefined();
  expect(await readdir(join(h.stateDir, 'operations'))).toEqual([]);
});
