// The libvirt driver against two real libvirtd daemons on this machine (hack/libvirt-sandbox.sh:
// one mount namespace, socket and port range each) running vmove's test guest under TCG. The
// hosts share one shared folder and the image folder. Guests are small (256 MiB, 1 vCPU) and
// the tests run one after another: the machine has two cores.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { HostConfig } from '../../../src/drivers/driver';
import type { MigrationStatus } from '../../../src/protocol/migration';
import type { VmSpec } from '../../../src/protocol/vm';
import { LibvirtDriver, type LibvirtDriverOptions, type LibvirtEndpoint } from '../../../src/drivers/libvirt';
import { LibvirtConnection } from '../../../src/drivers/libvirt/remote';
import { sandboxStatus, startSandbox, startSandboxHost, stopSandbox, type SandboxHost } from '../../../src/drivers/libvirt/sandbox';
import { serialLogPath } from '../../../src/drivers/libvirt/layout';
import { pollUntil } from '../../support/poll';

jest.setTimeout(240_000);

const MiB = 1024 * 1024;
const repo = path.resolve(__dirname, '../../..');
const imageDir = execFileSync(path.join(repo, 'hack/build-guest.sh'), { encoding: 'utf8' }).trim();
// Short: libvirt's sockets live below it and unix socket paths are limited to 107 bytes.
const root = mkdtempSync(path.join(os.tmpdir(), 'vmove-lv-'));
const sharedDir = path.join(root, 'shared');
const options: LibvirtDriverOptions = { accelerator: 'tcg', shutdownTimeoutMs: 10_000 };

let h1: SandboxHost;
let h2: SandboxHost;
let a: LibvirtDriver;
let b: LibvirtDriver;
const vms: VmSpec[] = [];

function vmSpec(name: string, storage: 'Local' | 'SharedFile', kernelArgs = 'vmove.disk_counter=1'): VmSpec {
  const vm: VmSpec = {
    id: `e2e_${name}`,
    uid: randomUUID(),
    image: path.basename(imageDir),
    cpu: 1,
    memoryBytes: 256 * MiB,
    disks: [{ name: 'root', sizeBytes: 128 * MiB, storage }],
    kernelArgs,
  };
  vms.push(vm);
  return vm;
}

interface Heartbeat {
  n: number;
  cpus: number;
  memKiB: number;
  disk: number;
}

/** Heartbeat lines of a VM's serial log on a host. */
function heartbeats(host: HostConfig, id: string): Heartbeat[] {
  let text = '';
  try {
    text = readFileSync(serialLogPath(host, id), 'latin1');
  } catch {
    return [];
  }
  return [...text.matchAll(/vmove-heartbeat (\d+) cpus=(\d+) mem_kib=(\d+) disk=(-?\d+)/g)].map((m) => ({
    n: Number(m[1]),
    cpus: Number(m[2]),
    memKiB: Number(m[3]),
    disk: Number(m[4]),
  }));
}

const lastHeartbeat = (host: HostConfig, id: string): Heartbeat | undefined => heartbeats(host, id).at(-1);

function bootPrevious(host: HostConfig, id: string): number[] {
  const text = readFileSync(serialLogPath(host, id), 'latin1');
  return [...text.matchAll(/vmove-boot disk_previous=(\d+)/g)].map((m) => Number(m[1]));
}

const until = <T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 90_000): Promise<T> =>
  pollUntil(what, probe, { timeoutMs, intervalMs: 250 });

const waitHeartbeat = (host: HostConfig, id: string, above = 0): Promise<Heartbeat> =>
  until(`a heartbeat above ${above} of ${id} on ${host.nodeName}`, () => {
    const hb = lastHeartbeat(host, id);
    return hb && hb.n > above ? hb : undefined;
  });

const vmInfo = async (d: LibvirtDriver, id: string) => (await d.list()).find((v) => v.id === id);

async function createRunning(d: LibvirtDriver, vm: VmSpec): Promise<void> {
  await d.ensureDisks(vm, 'keep');
  await d.define(vm);
  await d.start(vm.id);
}

async function migrationDone(source: LibvirtDriver, id: string, timeoutMs = 120_000): Promise<MigrationStatus> {
  return until(
    `migration of ${id}`,
    async () => {
      const s = await source.migrationStatus(id);
      if (s.state === 'failed' || s.state === 'cancelled') throw new Error(`migration ${s.state}: ${s.error}`);
      return s.state === 'completed' ? s : undefined;
    },
    timeoutMs,
  );
}

const defaults = { bandwidthMiBps: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false };

beforeAll(async () => {
  h1 = await startSandboxHost({ root, name: 'h1', sharedDir, imagesDir: path.dirname(imageDir), ports: [49900, 49939] });
  h2 = await startSandboxHost({ root, name: 'h2', sharedDir, imagesDir: path.dirname(imageDir), ports: [49940, 49979] });
  a = await LibvirtDriver.open(h1.config, { ...options, socketPath: h1.sandbox.socket });
  b = await LibvirtDriver.open(h2.config, { ...options, socketPath: h2.sandbox.socket });
}, 600_000);

afterAll(async () => {
  for (const d of [a, b]) {
    for (const vm of vms) await d?.undefine(vm.id, { deleteLocalDisks: true, deleteSharedDisks: true }).catch(() => undefined);
    await d?.close();
  }
  for (const h of [h1, h2]) if (h) await stopSandbox(h.sandbox.name, h.sandbox.dir, { killGuests: true });
  rmSync(root, { recursive: true, force: true });
}, 120_000);

test('each host has its own daemon with its own socket and host UUID', async () => {
  const s1 = await sandboxStatus('h1', h1.sandbox.dir);
  const s2 = await sandboxStatus('h2', h2.sandbox.dir);
  expect(s1.running && s2.running).toBe(true);
  expect(s1.pid).not.toBe(s2.pid);
  expect(s1.socket).not.toBe(s2.socket);
  const uuid = (dir: string) => readFileSync(path.join(dir, 'host-uuid'), 'utf8').trim();
  expect(uuid(h1.sandbox.dir)).not.toBe(uuid(h2.sandbox.dir));
  // Starting a running sandbox again changes nothing.
  expect((await startSandbox('h1', h1.sandbox.dir, [49900, 49939])).pid).toBe(s1.pid);
  expect(a.capabilities()).toMatchObject({ driver: 'libvirt', accelerator: 'tcg', liveMigration: true, blockMigration: true, hotplug: true });
});

test('define, start and heartbeat; define and start are idempotent; stop powers the guest off', async () => {
  const vm = vmSpec('lifecycle', 'Local');
  await a.ensureDisks(vm, 'keep');
  await a.define(vm);
  await a.define(vm);
  expect(await vmInfo(a, vm.id)).toMatchObject({ state: 'Stopped', uid: vm.uid, cpu: 1, memoryBytes: 256 * MiB });
  await a.start(vm.id);
  await a.start(vm.id);
  const first = await waitHeartbeat(h1.config, vm.id);
  await waitHeartbeat(h1.config, vm.id, first.n + 1);
  const info = await vmInfo(a, vm.id);
  expect(info).toMatchObject({ state: 'Running', cpu: 1, memoryBytes: 256 * MiB });
  expect(info!.heartbeat).toBeGreaterThan(first.n);
  await a.stop(vm.id);
  await a.stop(vm.id);
  expect((await vmInfo(a, vm.id))?.state).toBe('Stopped');
  await a.undefine(vm.id, { deleteLocalDisks: true });
  expect(await vmInfo(a, vm.id)).toBeUndefined();
  expect(existsSync(path.join(h1.config.localDir, vm.id))).toBe(false);
});

test('live migration over shared storage: the guest runs on at the target without rebooting', async () => {
  const vm = vmSpec('shared', 'SharedFile', 'vmove.disk_counter=1 vmove.dirty_mib=32');
  await createRunning(a, vm);
  await waitHeartbeat(h1.config, vm.id, 2);

  const to = await b.prepareIncoming(vm, { blockMigration: false, tuning: defaults });
  expect(await b.prepareIncoming(vm, { blockMigration: false, tuning: defaults })).toEqual(to);
  expect((await vmInfo(b, vm.id))?.state).toBe('Incoming');
  await a.startMigration(vm.id, to, defaults, { blockMigration: false });
  // Asked again (a controller retry): the running migration is left alone.
  await a.startMigration(vm.id, to, defaults, { blockMigration: false });
  const done = await migrationDone(a, vm.id);
  await b.completeIncoming(vm.id);

  expect(done).toMatchObject({ state: 'completed', memoryRemainingBytes: 0 });
  expect(done.memoryTotalBytes).toBeGreaterThanOrEqual(256 * MiB);
  expect(done.downtimeMs).toBeGreaterThan(0);
  const lastOnSource = lastHeartbeat(h1.config, vm.id)!;
  const firstOnTarget = (await waitHeartbeat(h2.config, vm.id)) && heartbeats(h2.config, vm.id)[0]!;
  // The counter lives in guest memory: it goes on from where the source stopped.
  expect(firstOnTarget.n).toBe(lastOnSource.n + 1);
  expect((await vmInfo(a, vm.id))?.state).toBe('Migrated');
  expect((await vmInfo(b, vm.id))?.state).toBe('Running');
  await waitHeartbeat(h2.config, vm.id, firstOnTarget.n + 2);

  // The controller's clean-up of the source: the shared disk stays, the target keeps running.
  await a.undefine(vm.id, { deleteLocalDisks: true });
  expect(await vmInfo(a, vm.id)).toBeUndefined();
  expect((await vmInfo(b, vm.id))?.state).toBe('Running');
  await b.undefine(vm.id, { deleteLocalDisks: true, deleteSharedDisks: true });
});

/** Writes `pattern` over 1 MiB at 8 MiB of a disk image (the guest only ever writes sector 0). */
const stamp = (file: string, pattern: number): void => {
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P ${pattern} 8M 1M`, file], { stdio: 'ignore' });
};

/** Whether 1 MiB at 8 MiB of a disk image (possibly in use by a guest) holds `pattern`. */
const hasStamp = (file: string, pattern: number): boolean => {
  try {
    // qemu-io exits 1 on "Pattern verification failed".
    execFileSync('qemu-io', ['-U', '-r', '-f', 'qcow2', '-c', `read -P ${pattern} 8M 1M`, file], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
};

test('block migration copies local disks: data written before the move is on the target', async () => {
  const vm = vmSpec('block', 'Local');
  await a.ensureDisks(vm, 'keep');
  const sourceDisk = path.join(h1.config.localDir, vm.id, 'root.qcow2');
  stamp(sourceDisk, 0x5a);
  await a.define(vm);
  await a.start(vm.id);
  await waitHeartbeat(h1.config, vm.id, 2);

  const to = (await b.prepareIncoming(vm, { blockMigration: true, tuning: defaults })) as LibvirtEndpoint;
  const targetDisk = path.join(h2.config.localDir, vm.id, 'root.qcow2');
  expect(to.libvirt.disks.root).toBe(targetDisk);
  expect(hasStamp(targetDisk, 0x5a)).toBe(false);
  await a.startMigration(vm.id, to, defaults, { blockMigration: true });
  const done = await migrationDone(a, vm.id);
  await b.completeIncoming(vm.id);

  expect(done.state).toBe('completed');
  expect(done.diskTotalBytes).toBeGreaterThan(0);
  expect(done.diskRemainingBytes).toBe(0);
  const lastOnSource = lastHeartbeat(h1.config, vm.id)!;
  await waitHeartbeat(h2.config, vm.id, lastOnSource.n + 2);
  expect(heartbeats(h2.config, vm.id)[0]!.n).toBe(lastOnSource.n + 1);
  // The target's disk holds what was on the source's before the guest ever ran.
  expect(hasStamp(targetDisk, 0x5a)).toBe(true);
  await a.undefine(vm.id, { deleteLocalDisks: true });
  expect(existsSync(path.join(h1.config.localDir, vm.id))).toBe(false);

  // A cold restart on the target boots from that disk and finds the guest's last counter there.
  await b.stop(vm.id);
  const stoppedAt = lastHeartbeat(h2.config, vm.id)!.disk;
  await b.start(vm.id);
  // (The target's log starts mid-run: its first boot line is this reboot's.)
  await until('the reboot on the target', () => bootPrevious(h2.config, vm.id).length === 1);
  expect(bootPrevious(h2.config, vm.id)[0]).toBeGreaterThanOrEqual(stoppedAt);
  await b.undefine(vm.id, { deleteLocalDisks: true });
});

test('aborting a migration leaves the VM running on the source', async () => {
  const vm = vmSpec('abort', 'SharedFile', 'vmove.disk_counter=1 vmove.dirty_mib=32');
  await createRunning(a, vm);
  await waitHeartbeat(h1.config, vm.id, 2);
  const to = await b.prepareIncoming(vm, { blockMigration: false, tuning: defaults });
  // 2 MiB/s: 256 MiB cannot move before the abort.
  await a.startMigration(vm.id, to, { ...defaults, bandwidthMiBps: 2 }, { blockMigration: false });
  const active = await until('a transferring migration', async () => {
    const s = await a.migrationStatus(vm.id);
    return s.state === 'active' && s.memoryTransferredBytes > 0 ? s : undefined;
  });
  expect(active.memoryTotalBytes).toBeGreaterThan(0);
  await a.tuneMigration(vm.id, { ...defaults, bandwidthMiBps: 3, maxDowntimeMs: 50 });

  await a.abortMigration(vm.id);
  await a.abortMigration(vm.id);
  expect((await a.migrationStatus(vm.id)).state).toBe('cancelled');
  expect((await vmInfo(a, vm.id))?.state).toBe('Running');
  const after = lastHeartbeat(h1.config, vm.id)!;
  await waitHeartbeat(h1.config, vm.id, after.n + 2);
  // Nothing runs on the target; it is still prepared for another attempt.
  expect((await vmInfo(b, vm.id))?.state).toBe('Incoming');
  await b.undefine(vm.id, { deleteLocalDisks: true });
  expect(await vmInfo(b, vm.id)).toBeUndefined();
  await a.undefine(vm.id, { deleteLocalDisks: true, deleteSharedDisks: true });
});

test('a capped migration that cannot converge: auto-converge restarts it armed, post-copy finishes it', async () => {
  const vm = vmSpec('ladder', 'SharedFile', 'vmove.disk_counter=1 vmove.dirty_mib=64');
  await createRunning(a, vm);
  await waitHeartbeat(h1.config, vm.id, 3);
  const to = await b.prepareIncoming(vm, { blockMigration: false, tuning: defaults });
  expect(to.postCopy).toBe(true);
  // 40 MiB/s is slower than this guest dirties its 64 MiB under TCG: pre-copy alone never ends.
  const capped = { ...defaults, bandwidthMiBps: 40 };
  await a.startMigration(vm.id, to, capped, { blockMigration: false });
  await until('a second pre-copy pass', async () => (await a.migrationStatus(vm.id)).iteration >= 2, 120_000);

  // libvirt cannot switch auto-converge on mid-way: the driver starts the migration over, armed.
  await a.tuneMigration(vm.id, { ...capped, autoConverge: true });
  const monitor = await LibvirtConnection.open(h1.sandbox.socket);
  try {
    const d = await monitor.lookupByName(vm.id);
    const throttle = await until(
      'QEMU to throttle the guest',
      async () => {
        const s = await a.migrationStatus(vm.id);
        expect(['setup', 'active']).toContain(s.state);
        const stats = await monitor.getJobStats(d);
        return stats.params.get('auto_converge_throttle');
      },
      120_000,
    );
    expect(throttle).toBeGreaterThan(0);
  } finally {
    await monitor.close();
  }

  await a.tuneMigration(vm.id, { ...capped, autoConverge: true, postCopy: true });
  const done = await migrationDone(a, vm.id);
  await b.completeIncoming(vm.id);
  expect(done.state).toBe('completed');
  const lastOnSource = lastHeartbeat(h1.config, vm.id)!;
  await waitHeartbeat(h2.config, vm.id, lastOnSource.n + 1);
  expect(heartbeats(h2.config, vm.id)[0]!.n).toBe(lastOnSource.n + 1);
  await a.undefine(vm.id, { deleteLocalDisks: true });
  await b.undefine(vm.id, { deleteLocalDisks: true, deleteSharedDisks: true });
});

test('cold move: the stopped disk streams to the other host and boots there', async () => {
  const vm = vmSpec('cold', 'Local');
  await createRunning(a, vm);
  await waitHeartbeat(h1.config, vm.id, 3);
  await expect(a.readDisk(vm.id, 'root')).rejects.toThrow(/stopped/);
  await a.stop(vm.id);
  const counter = lastHeartbeat(h1.config, vm.id)!.disk;

  const reader = await a.readDisk(vm.id, 'root');
  await b.writeDisk(vm, 'root', reader.stream, reader.sizeBytes);
  await b.ensureDisks(vm, 'keep');
  await b.define(vm);
  await b.start(vm.id);
  await waitHeartbeat(h2.config, vm.id);
  expect(bootPrevious(h2.config, vm.id)[0]).toBeGreaterThanOrEqual(counter);
  await a.undefine(vm.id, { deleteLocalDisks: true });
  await b.undefine(vm.id, { deleteLocalDisks: true });
});

test('hotplug adds CPUs and a DIMM to a running guest, and the guest sees them; the DIMM can go again', async () => {
  const vm = vmSpec('hotplug', 'Local');
  await createRunning(a, vm);
  const before = await waitHeartbeat(h1.config, vm.id, 1);
  await a.hotplug(vm.id, { cpu: 2, memoryBytes: 512 * MiB });
  expect(await vmInfo(a, vm.id)).toMatchObject({ state: 'Running', cpu: 2, memoryBytes: 512 * MiB });
  await a.hotplug(vm.id, { cpu: 2, memoryBytes: 512 * MiB }); // idempotent
  const grown = await until('the guest to online the new CPU and memory', () => {
    const hb = lastHeartbeat(h1.config, vm.id);
    return hb && hb.cpus === 2 && hb.memKiB === before.memKiB + 256 * 1024 ? hb : undefined;
  });
  expect(grown.cpus).toBe(2);

  // Under TCG a vCPU cannot be taken away live (see the driver); a DIMM can.
  await expect(a.hotplug(vm.id, { cpu: 1, memoryBytes: 512 * MiB })).rejects.toMatchObject({ transient: false, message: expect.stringMatching(/vCPU/) });
  await expect(a.hotplug(vm.id, { cpu: 2, memoryBytes: 320 * MiB })).rejects.toThrow(/DIMM|steps/);
  await a.hotplug(vm.id, { cpu: 2, memoryBytes: 256 * MiB });
  expect(await vmInfo(a, vm.id)).toMatchObject({ cpu: 2, memoryBytes: 256 * MiB });
  await until('the guest to give the memory back', () => lastHeartbeat(h1.config, vm.id)?.memKiB === before.memKiB);

  // What was plugged is in the definition too: a cold restart keeps 2 vCPUs.
  await a.stop(vm.id);
  await a.start(vm.id);
  const rebooted = await until('the guest to boot again with 2 CPUs', () => {
    const hb = lastHeartbeat(h1.config, vm.id);
    return hb && bootPrevious(h1.config, vm.id).length === 2 && hb.cpus === 2 ? hb : undefined;
  });
  expect(rebooted.cpus).toBe(2);
  await a.undefine(vm.id, { deleteLocalDisks: true });
});

test('a new driver and a restarted libvirtd find the running VM again', async () => {
  const vm = vmSpec('adopt', 'Local');
  await createRunning(a, vm);
  const before = await waitHeartbeat(h1.config, vm.id, 1);
  await a.close();
  await stopSandbox('h1', h1.sandbox.dir);
  // The guest outlives its daemon (QEMU keeps running; libvirtd re-attaches on start).
  await waitHeartbeat(h1.config, vm.id, before.n + 1);
  h1 = { ...h1, sandbox: await startSandbox('h1', h1.sandbox.dir, [49900, 49939]) };
  a = await LibvirtDriver.open(h1.config, { ...options, socketPath: h1.sandbox.socket });
  const info = await until('the re-adopted VM', async () => {
    const v = await vmInfo(a, vm.id);
    return v?.state === 'Running' && (v.heartbeat ?? 0) > before.n ? v : undefined;
  });
  expect(info).toMatchObject({ uid: vm.uid, cpu: 1, memoryBytes: 256 * MiB });
  await a.stop(vm.id);
  expect((await vmInfo(a, vm.id))?.state).toBe('Stopped');
  await a.undefine(vm.id, { deleteLocalDisks: true });
});

test('stopping a sandbox with its guests leaves no process behind', async () => {
  const root2 = mkdtempSync(path.join(os.tmpdir(), 'vmove-lv3-'));
  try {
    const h3 = await startSandboxHost({ root: root2, name: 'h3', sharedDir, imagesDir: path.dirname(imageDir), ports: [49980, 49989] });
    const c = await LibvirtDriver.open(h3.config, { ...options, socketPath: h3.sandbox.socket });
    const vm = vmSpec('orphans', 'Local');
    await createRunning(c, vm);
    await waitHeartbeat(h3.config, vm.id);
    await c.close();
    const running = await sandboxStatus('h3', h3.sandbox.dir);
    expect(running.guests).toHaveLength(1);
    await stopSandbox('h3', h3.sandbox.dir, { killGuests: true });
    const stopped = await sandboxStatus('h3', h3.sandbox.dir);
    expect(stopped.running).toBe(false);
    for (const pid of [running.pid, ...running.guests]) expect(existsSync(`/proc/${pid}`)).toBe(false);
  } finally {
    rmSync(root2, { recursive: true, force: true });
  }
});
