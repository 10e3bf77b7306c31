// The sim driver as a host: migration over TCP between two sim hosts (peer death, post-copy,
// re-adoption after a restart), disks that tell copies from fresh ones, failure injection.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DriverError, type HostConfig } from '../../../../src/drivers/driver';
import type { MigrationStatus, MigrationTuning } from '../../../../src/protocol/migration';
import type { VmSpec } from '../../../../src/protocol/vm';
import { SIM_ANNOTATIONS, SimDriver, createSimImage, readSimDiskHeader, simDiskPath, type SimDriverOptions } from '../../../../src/drivers/sim';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

let work: string;
let portBase = 21000 + (process.pid % 1500) * 20;
const open: SimDriver[] = [];

/** A fresh host (its own folders); the same HostConfig again is the same host after a restart. */
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
    storage: ['Local', 'SharedFile', 'SharedBlock'],
  };
}

async function sim(h: HostConfig, opts: Partial<SimDriverOptions> = {}): Promise<SimDriver> {
  const d = await SimDriver.open(h, { timeScale: 10, ...opts });
  open.push(d);
  return d;
}

let n = 0;
function vm(storage: 'Local' | 'SharedFile' = 'SharedFile', annotations: Record<string, string> = {}): VmSpec {
  n += 1;
  return {
    id: `default_vm-${n}`,
    uid: `uid-${n}-${process.pid}`,
    image: 'tiny',
    cpu: 1,
    memoryBytes: 256 * MiB,
    disks: [{ name: 'root', sizeBytes: 1 * GiB, storage }],
    annotations,
  };
}

const tuning = (over: Partial<MigrationTuning> = {}): MigrationTuning => ({ bandwidthMiBps: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false, ...over });

async function running(d: SimDriver, spec: VmSpec): Promise<void> {
  await d.ensureDisks(spec, 'keep');
  await d.define(spec);
  await d.start(spec.id);
}

async function until(d: SimDriver, id: string, done: (s: MigrationStatus) => boolean, timeoutMs = 5_000): Promise<MigrationStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await d.migrationStatus(id);
    if (done(st)) return st;
    if (Date.now() > deadline) throw new Error(`migration stuck: ${JSON.stringify(st)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const terminal = (s: MigrationStatus) => ['completed', 'failed', 'cancelled'].includes(s.state);
const stateOf = async (d: SimDriver, id: string) => (await d.list()).find((v) => v.id === id)?.state;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vmove-sim-'));
  await createSimImage(join(work, 'images'), 'tiny');
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('live migration between two sim hosts', () => {
  test('if the target dies mid-stream, the migration fails on the source and the VM runs on there', async () => {
    const [a, b] = [await sim(host('a'), { bandwidthMiBps: 8 }), await sim(host('b'))];
    const spec = vm();
    await running(a, spec);
    const to = await b.prepareIncoming(spec, { blockMigration: false });
    await a.startMigration(spec.id, to, tuning(), { blockMigration: false });
    await until(a, spec.id, (s) => s.state === 'active' && s.memoryTransferredBytes > 0);
    await b.close();
    const st = await until(a, spec.id, terminal);
    expect(st).toMatchObject({ state: 'failed', errorTransient: true });
    expect(st.error).toMatch(/broke/);
    expect(await stateOf(a, spec.id)).toBe('Running');
  });

  test('a target that is not listening fails the migration as transient', async () => {
    const a = await sim(host('a'));
    const spec = vm();
    await running(a, spec);
    await a.startMigration(spec.id, { migrationUri: `tcp:127.0.0.1:${portBase + 3}` }, tuning(), { blockMigration: false });
    const st = await until(a, spec.id, terminal);
    expect(st).toMatchObject({ state: 'failed', errorTransient: true });
    expect(await stateOf(a, spec.id)).toBe('Running');
  });

  test('the target refuses a stream for a VM it does not expect', async () => {
    const [a, b] = [await sim(host('a')), await sim(host('b'))];
    const spec = vm();
    const other = vm();
    await running(a, spec);
    await a.ensureDisks(other, 'keep');
    const to = await b.prepareIncoming(other, { blockMigration: false });
    await a.startMigration(spec.id, to, tuning(), { blockMigration: false });
    const st = await until(a, spec.id, terminal);
    expect(st).toMatchObject({ state: 'failed', errorTransient: false });
    expect(st.error).toMatch(/does not expect/);
  });

  test('a guest that cannot converge finishes once post-copy is switched on, paused at the source meanwhile', async () => {
    const [a, b] = [await sim(host('a'), { bandwidthMiBps: 100, timeScale: 20 }), await sim(host('b'))];
    const spec = vm('SharedFile', { [SIM_ANNOTATIONS.neverConverge]: 'true' });
    await running(a, spec);
    const to = await b.prepareIncoming(spec, { blockMigration: false });
    await a.startMigration(spec.id, to, tuning({ autoConverge: true }), { blockMigration: false });
    const stuck = await until(a, spec.id, (s) => s.iteration >= 3);
    expect(stuck.state).toBe('active');
    await a.tuneMigration(spec.id, tuning({ postCopy: true }));
    const st = await until(a, spec.id, terminal, 10_000);
    expect(st).toMatchObject({ state: 'completed', memoryRemainingBytes: 0, downtimeMs: 1 });
    expect(await stateOf(a, spec.id)).toBe('Migrated');
    expect(await stateOf(b, spec.id)).toBe('Paused');
    await b.completeIncoming(spec.id);
    expect(await stateOf(b, spec.id)).toBe('Running');
  });

  test('post-copy cannot be cancelled; pre-copy can', async () => {
    const [a, b] = [await sim(host('a'), { bandwidthMiBps: 1 }), await sim(host('b'))];
    const spec = vm();
    await running(a, spec);
    const to = await b.prepareIncoming(spec, { blockMigration: false });
    await a.startMigration(spec.id, to, tuning(), { blockMigration: false });
    await until(a, spec.id, (s) => s.state === 'active');
    await a.tuneMigration(spec.id, tuning({ postCopy: true }));
    await until(a, spec.id, (s) => s.state === 'postcopy');
    expect(await stateOf(a, spec.id)).toBe('Paused');
    await expect(a.abortMigration(spec.id)).rejects.toThrow(/post-copy/);
  });

  test('an agent restart during a migration: the stream is gone, the VM runs on at the source', async () => {
    const ha = host('a');
    const [a, b] = [await sim(ha, { bandwidthMiBps: 1 }), await sim(host('b'))];
    const spec = vm();
    await running(a, spec);
    const to = await b.prepareIncoming(spec, { blockMigration: false });
    await a.startMigration(spec.id, to, tuning(), { blockMigration: false });
    await until(a, spec.id, (s) => s.state === 'active');
    await a.close();
    const again = await sim(ha);
    const st = await again.migrationStatus(spec.id);
    expect(st).toMatchObject({ state: 'failed', errorTransient: true });
    expect(await stateOf(again, spec.id)).toBe('Running');
    // The target saw the stream break: its incoming VM is gone, ready for a new attempt.
    await new Promise((r) => setTimeout(r, 100));
    expect(await stateOf(b, spec.id)).toBeUndefined();
  });

  test('an incoming VM is still waiting after the target agent restarts, on the same endpoint', async () => {
    const hb = host('b');
    const [a, b] = [await sim(host('a')), await sim(hb)];
    const spec = vm();
    await running(a, spec);
    const to = await b.prepareIncoming(spec, { blockMigration: false });
    await b.close();
    const b2 = await sim(hb);
    expect(await b2.prepareIncoming(spec, { blockMigration: false })).toEqual(to);
    await a.startMigration(spec.id, to, tuning(), { blockMigration: false });
    expect((await until(a, spec.id, terminal)).state).toBe('completed');
  });

  test('the heartbeat goes on at the target from where the source stopped', async () => {
    const [a, b] = [await sim(host('a')), await sim(host('b'))];
    const spec = vm();
    await running(a, spec);
    await new Promise((r) => setTimeout(r, 350));
    const to = await b.prepareIncoming(spec, { blockMigration: false });
    await a.startMigration(spec.id, to, tuning(), { blockMigration: false });
    await until(a, spec.id, terminal);
    const last = (await a.list())[0]!.heartbeat!;
    expect(last).toBeGreaterThanOrEqual(3);
    await b.completeIncoming(spec.id);
    expect((await b.list())[0]!.heartbeat).toBe(last);
    await new Promise((r) => setTimeout(r, 250));
    expect((await b.list())[0]!.heartbeat).toBeGreaterThan(last);
    expect((await a.list())[0]!.heartbeat).toBe(last);
  });

  test('a guest that boots sends no heartbeat until its boot seconds passed, and goes on booting on the target', async () => {
    // The migration runs on the real clock; the boot is passed over by moving the clock on.
    let skipped = 0;
    const now = () => Date.now() + skipped;
    const [a, b] = [await sim(host('a'), { now }), await sim(host('b'), { now })];
    const spec = vm('SharedFile', { [SIM_ANNOTATIONS.bootSeconds]: '100' });
    await running(a, spec);
    expect((await a.list())[0]!.heartbeat).toBeUndefined();
    const to = await b.prepareIncoming(spec, { blockMigration: false });
    await a.startMigration(spec.id, to, tuning(), { blockMigration: false });
    await until(a, spec.id, terminal);
    await b.completeIncoming(spec.id);
    expect((await b.list())[0]!.heartbeat).toBeUndefined();
    skipped += 10_000; // 100 simulated seconds
    const first = (await b.list())[0]!.heartbeat;
    expect(first).toBeGreaterThanOrEqual(0);
    expect(first).toBeLessThan(30);
  });
});

describe('disks', () => {
  test('sparse files of the disk size; a boot bumps the generation; fresh disks start over', async () => {
    const h = host('a');
    const a = await sim(h);
    const spec = vm('Local');
    await running(a, spec);
    const path = simDiskPath(h, spec.id, spec.disks[0]!);
    const st = await stat(path);
    expect(st.size).toBe(1 * GiB);
    expect(st.blocks * 512).toBeLessThan(1 * MiB);
    await a.stop(spec.id);
    await a.start(spec.id);
    expect(await readSimDiskHeader(path)).toMatchObject({ vmUid: spec.uid, generation: 2, origin: 'image' });
    await a.stop(spec.id);
    await a.ensureDisks(spec, 'keep');
    expect((await readSimDiskHeader(path))?.generation).toBe(2);
    await a.ensureDisks(spec, 'fresh');
    expect((await readSimDiskHeader(path))?.generation).toBe(0);
  });

  test('undefine deletes local disks only when asked, shared disks never', async () => {
    const h = host('a');
    const a = await sim(h);
    const local = vm('Local');
    const shared = vm('SharedFile');
    for (const s of [local, shared]) await running(a, s);
    await a.stop(local.id);
    await a.undefine(local.id, { deleteLocalDisks: false });
    expect(await readSimDiskHeader(simDiskPath(h, local.id, local.disks[0]!))).toBeDefined();
    await a.undefine(local.id, { deleteLocalDisks: true });
    expect(await readSimDiskHeader(simDiskPath(h, local.id, local.disks[0]!))).toBeUndefined();
    await a.stop(shared.id);
    await a.undefine(shared.id, { deleteLocalDisks: true });
    expect(await readSimDiskHeader(simDiskPath(h, shared.id, shared.disks[0]!))).toBeDefined();
  });

  test('a disk stream takes size ÷ disk rate of simulated time', async () => {
    const a = await sim(host('a'), { diskMiBps: 1024, timeScale: 4 });
    const spec = vm('Local');
    await running(a, spec);
    await a.stop(spec.id);
    const started = Date.now();
    const reader = await a.readDisk(spec.id, 'root');
    let bytes = 0;
    for await (const chunk of reader.stream) bytes += (chunk as Buffer).length;
    // 1 GiB at 1 GiB/s is 1 simulated second, 250 ms at time scale 4.
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(bytes).toBe(reader.sizeBytes);
  });
});

describe('failure injection and errors', () => {
  test('fail-at fails the named operation permanently, only on the named node', async () => {
    const [a, b] = [await sim(host('a')), await sim(host('b'))];
    const spec = vm('SharedFile', { [SIM_ANNOTATIONS.failAt]: 'startVm@b, hotplug' });
    await running(a, spec);
    await expect(a.hotplug(spec.id, { cpu: 2, memoryBytes: 256 * MiB })).rejects.toMatchObject({ transient: false });
    await b.define(spec);
    const err = await b.start(spec.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect(err).toMatchObject({ transient: false, message: expect.stringMatching(/injected failure in startVm on b/) });
  });

  test('fail-transient-at: migrate fails the migration as transient, and the VM runs on', async () => {
    const [a, b] = [await sim(host('a'), { bandwidthMiBps: 64 }), await sim(host('b'))];
    const spec = vm('SharedFile', { [SIM_ANNOTATIONS.failTransientAt]: 'migrate' });
    await running(a, spec);
    const to = await b.prepareIncoming(spec, { blockMigration: false });
    await a.startMigration(spec.id, to, tuning(), { blockMigration: false });
    expect(await until(a, spec.id, terminal)).toMatchObject({ state: 'failed', errorTransient: true });
    expect(await stateOf(a, spec.id)).toBe('Running');
  });

  test('fail-at: verify crashes the guest; fail-transient-at: verify hangs it for a while', async () => {
    const a = await sim(host('a'));
    const crash = vm('SharedFile', { [SIM_ANNOTATIONS.failAt]: 'verify@a' });
    const hang = vm('SharedFile', { [SIM_ANNOTATIONS.failTransientAt]: 'verify' });
    await running(a, crash);
    await running(a, hang);
    await new Promise((r) => setTimeout(r, 300));
    const list = await a.list();
    expect(list.find((v) => v.id === crash.id)?.state).toBe('Crashed');
    expect(list.find((v) => v.id === hang.id)).toMatchObject({ state: 'Running', heartbeat: 0 });
  });

  test('permanent errors for what will not change by trying again', async () => {
    const a = await sim(host('a'));
    await expect(a.start('default_nothing')).rejects.toMatchObject({ transient: false, message: expect.stringMatching(/no VM/) });
    await expect(a.ensureDisks({ ...vm(), image: 'missing' }, 'keep')).rejects.toMatchObject({ transient: false, message: expect.stringMatching(/unknown image/) });
    const spec = vm();
    await running(a, spec);
    await expect(a.hotplug(spec.id, { cpu: 64, memoryBytes: 256 * MiB })).rejects.toMatchObject({ transient: false });
  });
});
