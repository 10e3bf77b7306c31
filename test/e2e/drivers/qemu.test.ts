// The qemu driver against real QEMU (TCG) and vmove's test guest: two "hosts" on this machine,
// each with its own state and local folders, sharing one shared folder, with distinct
// migration port ranges. Guests are small (256 MiB, 1 vCPU) and tests run one after another.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { HostConfig } from '../../../src/drivers/driver';
import type { MigrationStatus } from '../../../src/protocol/migration';
import type { VmSpec } from '../../../src/protocol/vm';
import { QemuDriver, type QemuDriverOptions } from '../../../src/drivers/qemu';
import { pollUntil } from '../../support/poll';

jest.setTimeout(180_000);

const MiB = 1024 * 1024;
const repo = path.resolve(__dirname, '../../..');
const imageDir = execFileSync(path.join(repo, 'hack/build-guest.sh'), { encoding: 'utf8' }).trim();
const root = mkdtempSync(path.join(os.tmpdir(), 'vmove-qemu-'));
const sharedDir = path.join(root, 'shared');

function hostConfig(name: string, ports: [number, number]): HostConfig {
  const dir = path.join(root, name);
  return {
    nodeName: name,
    stateDir: path.join(dir, 'state'),
    localDir: path.join(dir, 'local'),
    sharedDir,
    imagesDir: path.dirname(imageDir),
    migrationAddress: '127.0.0.1',
    migrationPorts: ports,
    capacity: { cpu: 2, memoryBytes: 4096 * MiB },
    storage: ['Local', 'SharedFile'],
  };
}

const hostA = hostConfig('a', [49300, 49319]);
const hostB = hostConfig('b', [49320, 49339]);
const driverOptions: QemuDriverOptions = { accelerator: 'tcg', shutdownTimeoutMs: 10_000 };
let a: QemuDriver;
let b: QemuDriver;
const vmIds = new Set<string>();

function vmSpec(name: string, storage: 'Local' | 'SharedFile', kernelArgs = 'vmove.disk_counter=1'): VmSpec {
  vmIds.add(`e2e_${name}`);
  return {
    id: `e2e_${name}`,
    uid: '2b1c6a36-94a5-4f7e-9a53-0d1f4b1b9c0' + (vmIds.size % 10),
    image: path.basename(imageDir),
    cpu: 1,
    memoryBytes: 256 * MiB,
    disks: [{ name: 'root', sizeBytes: 128 * MiB, storage }],
    kernelArgs,
  };
}

/** Heartbeat lines of a VM's serial log on a host. */
function heartbeats(host: HostConfig, id: string): { n: number; cpus: number; memKiB: number; disk: number }[] {
  let text = '';
  try {
    text = readFileSync(path.join(host.stateDir, 'qemu', 'vms', id, 'serial.log'), 'latin1');
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

function bootPrevious(host: HostConfig, id: string): number | undefined {
  const text = readFileSync(path.join(host.stateDir, 'qemu', 'vms', id, 'serial.log'), 'latin1');
  const m = /vmove-boot disk_previous=(\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

const until = <T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000, context?: () => string): Promise<T> =>
  pollUntil(what, probe, { timeoutMs, context });

/** The end of a VM's console and of its QEMU's own log on a host, for a wait that timed out. */
function consoleTail(host: HostConfig, id: string, lines = 25): string {
  return (['serial.log', 'qemu.log'] as const)
    .map((file) => {
      try {
        const text = readFileSync(path.join(host.stateDir, 'qemu', 'vms', id, file), 'latin1');
        return `${file} of ${id} on ${host.nodeName} (${text.length} bytes), last lines:\n${text.split('\n').slice(-lines).join('\n')}`;
      } catch (err) {
        return `${file} of ${id} on ${host.nodeName}: ${String(err)}`;
      }
    })
    .join('\n');
}

const waitHeartbeat = (host: HostConfig, id: string, atLeast = 1) =>
  until(`heartbeat ${atLeast} of ${id} on ${host.nodeName}`, () => {
    const hb = heartbeats(host, id);
    return hb.length > 0 && hb[hb.length - 1]!.n >= atLeast ? hb[hb.length - 1] : undefined;
  });

async function vmInfo(d: QemuDriver, id: string) {
  return (await d.list()).find((v) => v.id === id);
}

async function createRunning(d: QemuDriver, vm: VmSpec): Promise<void> {
  await d.ensureDisks(vm, 'keep');
  await d.define(vm);
  await d.start(vm.id);
}

async function migrateUntilDone(source: QemuDriver, id: string): Promise<MigrationStatus> {
  return until(`migration of ${id}`, async () => {
    const s = await source.migrationStatus(id);
    if (s.state === 'failed' || s.state === 'cancelled') throw new Error(`migration ${s.state}: ${s.error}`);
    return s.state === 'completed' ? s : undefined;
  }, 120_000);
}

beforeAll(() => {
  a = new QemuDriver(hostA, driverOptions);
  b = new QemuDriver(hostB, driverOptions);
});

afterAll(async () => {
  for (const d of [a, b]) {
    for (const id of vmIds) await d.undefine(id, { deleteLocalDisks: true, deleteSharedDisks: true }).catch(() => undefined);
    await d.close();
  }
  rmSync(root, { recursive: true, force: true });
});

test('a VM boots, shows its heartbeat and size, and stops', async () => {
  const vm = vmSpec('boot', 'Local');
  await createRunning(a, vm);
  await waitHeartbeat(hostA, vm.id, 2);
  const info = await vmInfo(a, vm.id);
  expect(info).toMatchObject({ state: 'Running', cpu: 1, memoryBytes: 256 * MiB });
  expect(info!.heartbeat).toBeGreaterThanOrEqual(2);
  expect(info!.machine).toBeDefined();
  await a.start(vm.id); // idempotent
  await a.stop(vm.id);
  expect(await vmInfo(a, vm.id)).toMatchObject({ state: 'Stopped' });
  await a.stop(vm.id); // idempotent
  await a.undefine(vm.id, { deleteLocalDisks: true });
  expect(await vmInfo(a, vm.id)).toBeUndefined();
});

/** Live-migrate `vm` from a to b and switch over; returns the last source and first target heartbeat. */
async function liveMigrate(vm: VmSpec, blockMigration: boolean, beforeSwitch: () => void = () => undefined, source = a, target = b, sourceHost = hostA, targetHost = hostB) {
  const tuning = { bandwidthMiBps: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false };
  const machine = (await vmInfo(source, vm.id))!.machine;
  const to = await target.prepareIncoming({ ...vm, machine }, { blockMigration, tuning });
  expect(await target.prepareIncoming({ ...vm, machine }, { blockMigration, tuning })).toEqual(to); // idempotent
  expect(await vmInfo(target, vm.id)).toMatchObject({ state: 'Incoming' });
  await source.startMigration(vm.id, to, tuning, { blockMigration });
  await source.startMigration(vm.id, to, tuning, { blockMigration }); // idempotent
  const status = await migrateUntilDone(source, vm.id);
  expect(await vmInfo(source, vm.id)).toMatchObject({ state: 'Migrated' });
  expect(await vmInfo(target, vm.id)).toMatchObject({ state: 'Incoming' });
  beforeSwitch();
  await target.completeIncoming(vm.id);
  const lastSource = heartbeats(sourceHost, vm.id).at(-1)!;
  const firstTarget = await until('first target heartbeat', () => heartbeats(targetHost, vm.id)[0], 60_000, () => consoleTail(targetHost, vm.id)).catch(async (err: Error) => {
    throw new Error(`${err.message}\ntarget as its driver sees it: ${JSON.stringify(await vmInfo(target, vm.id))}`);
  });
  return { status, lastSource, firstTarget };
}

test('live migration over shared storage: the guest keeps counting on the target', async () => {
  const vm = vmSpec('shared', 'SharedFile', 'vmove.disk_counter=1 vmove.dirty_mib=64');
  await createRunning(a, vm);
  await waitHeartbeat(hostA, vm.id, 3);
  await b.define(vm);
  const { status, lastSource, firstTarget } = await liveMigrate(vm, false);
  expect(firstTarget.n).toBe(lastSource.n + 1);
  expect(status.memoryTotalBytes).toBeGreaterThanOrEqual(256 * MiB);
  expect(status.memoryTransferredBytes).toBeGreaterThan(64 * MiB);
  expect(status.diskTotalBytes).toBe(0);
  const onTarget = await vmInfo(b, vm.id);
  expect(onTarget).toMatchObject({ state: 'Running', cpu: 1, memoryBytes: 256 * MiB });
  await waitHeartbeat(hostB, vm.id, firstTarget.n + 2);
  // The source is left paused after the hand-over; the agent cleans it up.
  await a.undefine(vm.id, { deleteLocalDisks: true });
  await b.stop(vm.id);
});

test('block migration mirrors local disks: the disk counter continues and the images match', async () => {
  const vm = vmSpec('block', 'Local', 'vmove.disk_counter=1 vmove.dirty_mib=64');
  await createRunning(a, vm);
  await waitHeartbeat(hostA, vm.id, 3);
  // Both ends are paused between the end of the migration and the switch-over: the images must match.
  const src = path.join(hostA.localDir, vm.id, 'root.qcow2');
  const dst = path.join(hostB.localDir, vm.id, 'root.qcow2');
  let compared = '';
  const { status, lastSource, firstTarget } = await liveMigrate(vm, true, () => {
    compared = execFileSync('qemu-img', ['compare', '-U', '-f', 'qcow2', '-F', 'qcow2', src, dst], { encoding: 'utf8' }).trim();
  });
  expect(compared).toBe('Images are identical.');
  expect(firstTarget.n).toBe(lastSource.n + 1);
  expect(firstTarget.disk).toBe(lastSource.disk + 1);
  expect(status.diskTotalBytes).toBeGreaterThan(0);
  expect(status.diskTransferredBytes).toBe(status.diskTotalBytes);
  expect(status.diskRemainingBytes).toBe(0);
  await a.undefine(vm.id, { deleteLocalDisks: true });
  // A cold boot on the target reads back the counter the migrated guest kept writing.
  await b.stop(vm.id);
  await b.start(vm.id);
  await waitHeartbeat(hostB, vm.id, 1);
  expect(bootPrevious(hostB, vm.id)).toBeGreaterThanOrEqual(firstTarget.disk);
  await b.stop(vm.id);
});

test('aborting a migration leaves the VM running on the source', async () => {
  const vm = vmSpec('abort', 'SharedFile', 'vmove.dirty_mib=64');
  await createRunning(a, vm);
  await waitHeartbeat(hostA, vm.id, 2);
  // 1 MiB/s cannot move 256 MiB quickly: the migration is surely active when it is aborted.
  const tuning = { bandwidthMiBps: 1, maxDowntimeMs: 300, autoConverge: false, postCopy: false };
  const to = await b.prepareIncoming(vm, { blockMigration: false, tuning });
  await a.startMigration(vm.id, to, tuning, { blockMigration: false });
  await until('migration active', async () => ((await a.migrationStatus(vm.id)).memoryTransferredBytes > 0 ? true : undefined));
  await a.abortMigration(vm.id);
  await a.abortMigration(vm.id); // idempotent
  expect((await a.migrationStatus(vm.id)).state).toBe('cancelled');
  const before = heartbeats(hostA, vm.id).at(-1)!.n;
  await waitHeartbeat(hostA, vm.id, before + 2);
  expect(await vmInfo(a, vm.id)).toMatchObject({ state: 'Running' });
  // The target's QEMU gave up when its stream broke; nothing runs there.
  await until('target gone', async () => ((await vmInfo(b, vm.id))?.state === 'Stopped' ? true : undefined));
  await b.undefine(vm.id, { deleteLocalDisks: true });
  await a.stop(vm.id);
});

test('cold move copies the local disk: the counter survives a reboot on the target; a rebuild starts afresh', async () => {
  const vm = vmSpec('cold', 'Local');
  await createRunning(a, vm);
  await waitHeartbeat(hostA, vm.id, 3);
  await a.stop(vm.id);
  const lastSource = heartbeats(hostA, vm.id).at(-1)!;
  const started = Date.now();
  const reader = await a.readDisk(vm.id, 'root');
  await b.writeDisk(vm, 'root', reader.stream, reader.sizeBytes);
  const copyMs = Date.now() - started;
  await b.define(vm);
  await b.start(vm.id);
  await waitHeartbeat(hostB, vm.id, 1);
  const previous = bootPrevious(hostB, vm.id)!;
  // A write may have landed after the last line the guest printed, never before.
  expect(previous === lastSource.disk || previous === lastSource.disk + 1).toBe(true);
  console.log(`cold move: disk of ${reader.sizeBytes} bytes streamed in ${copyMs} ms`);
  await a.undefine(vm.id, { deleteLocalDisks: true });

  await b.stop(vm.id);
  await b.ensureDisks(vm, 'fresh');
  await b.start(vm.id);
  await waitHeartbeat(hostB, vm.id, 1);
  expect(bootPrevious(hostB, vm.id)).toBe(0);
  await b.stop(vm.id);
});

test('hotplug grows CPUs and memory the guest sees, shrinks them back, and the layout follows a live migration', async () => {
  const vm = vmSpec('hotplug', 'SharedFile', '');
  await createRunning(a, vm);
  await waitHeartbeat(hostA, vm.id, 1);
  const before = heartbeats(hostA, vm.id).at(-1)!;
  expect(before.cpus).toBe(1);
  await a.hotplug(vm.id, { cpu: 2, memoryBytes: 512 * MiB });
  const grown = await until('guest sees 2 CPUs and more memory', () => {
    const hb = heartbeats(hostA, vm.id).at(-1)!;
    return hb.cpus === 2 && hb.memKiB >= before.memKiB + 256 * 1024 ? hb : undefined;
  });
  expect(grown.memKiB).toBe(before.memKiB + 256 * 1024);
  expect(await vmInfo(a, vm.id)).toMatchObject({ cpu: 2, memoryBytes: 512 * MiB });
  await a.hotplug(vm.id, { cpu: 2, memoryBytes: 512 * MiB }); // idempotent
  await expect(a.hotplug(vm.id, { cpu: 2, memoryBytes: 384 * MiB })).rejects.toThrow(/only whole hotplugged DIMMs/);

  // The target is started with the source's layout (boot CPUs + hotplugged ones, DIMMs).
  const { lastSource, firstTarget } = await liveMigrate({ ...vm, cpu: 2, memoryBytes: 512 * MiB }, false);
  expect(firstTarget.n).toBe(lastSource.n + 1);
  expect(firstTarget).toMatchObject({ cpus: 2, memKiB: grown.memKiB });
  await a.undefine(vm.id, { deleteLocalDisks: true });

  await b.hotplug(vm.id, { cpu: 1, memoryBytes: 256 * MiB });
  await until('guest back to 1 CPU and its boot memory', () => {
    const hb = heartbeats(hostB, vm.id).at(-1)!;
    return hb.cpus === 1 && hb.memKiB === before.memKiB ? hb : undefined;
  });
  expect(await vmInfo(b, vm.id)).toMatchObject({ cpu: 1, memoryBytes: 256 * MiB });
  await b.stop(vm.id);
});

test('a restarted agent finds its running VMs again', async () => {
  const vm = vmSpec('adopt', 'Local');
  await createRunning(a, vm);
  const hb = await waitHeartbeat(hostA, vm.id, 2);
  await a.close();
  a = new QemuDriver(hostA, driverOptions);
  const info = await vmInfo(a, vm.id);
  expect(info).toMatchObject({ state: 'Running', cpu: 1, memoryBytes: 256 * MiB });
  expect(info!.heartbeat).toBeGreaterThanOrEqual(hb.n);
  await a.start(vm.id); // already running: nothing to do
  expect(heartbeats(hostA, vm.id)[0]!.n).toBe(1); // same boot, not restarted
  await a.stop(vm.id);
  expect(await vmInfo(a, vm.id)).toMatchObject({ state: 'Stopped' });
});

/**
 * A CA plus server and client certificates, laid out as QEMU's tls-creds-x509 reads them. They
 * name both test hosts as vmove's node certificates do (the source checks the target by its node
 * name, IncomingEndpoint.tlsName) and 127.0.0.1.
 */
function makeCertificates(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ext = (name: string, text: string) => require('node:fs').writeFileSync(path.join(dir, name), text);
  require('node:fs').mkdirSync(dir, { recursive: true });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=vmove test CA', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  for (const [who, usage] of [['server', 'serverAuth'], ['client', 'clientAuth']] as const) {
    ext(`${who}.ext`, `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=${usage}\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:${hostA.nodeName},DNS:${hostB.nodeName}\n`);
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=vmove test ${who}`, '-keyout', `${who}-key.pem`, '-out', `${who}.csr`);
    ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '2', '-extfile', `${who}.ext`, '-out', `${who}-cert.pem`);
  }
}

test.each([false, true])('with certificates the migration stream uses TLS (block migration: %s)', async (blockMigration) => {
  const tlsDir = path.join(root, 'tls');
  makeCertificates(tlsDir);
  const aTls = new QemuDriver(hostA, { ...driverOptions, tlsDir });
  const bTls = new QemuDriver(hostB, { ...driverOptions, tlsDir });
  const vm = vmSpec(blockMigration ? 'tlsblock' : 'tls', blockMigration ? 'Local' : 'SharedFile', 'vmove.disk_counter=1 vmove.dirty_mib=64');
  try {
    await createRunning(aTls, vm);
    await waitHeartbeat(hostA, vm.id, 2);
    // A plain-text source cannot feed a TLS target.
    const tuning = { bandwidthMiBps: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false };
    const to = await bTls.prepareIncoming(vm, { blockMigration, tuning });
    expect(to.tls).toBe(true);
    await expect(a.startMigration(vm.id, to, tuning, { blockMigration })).rejects.toThrow(/TLS/);
    await aTls.startMigration(vm.id, to, tuning, { blockMigration });
    const status = await migrateUntilDone(aTls, vm.id);
    if (blockMigration) expect(status.diskTransferredBytes).toBe(status.diskTotalBytes);
    await bTls.completeIncoming(vm.id);
    const lastSource = heartbeats(hostA, vm.id).at(-1)!;
    const firstTarget = await until('first target heartbeat', () => heartbeats(hostB, vm.id)[0]);
    expect(firstTarget.n).toBe(lastSource.n + 1);
    expect(firstTarget.disk).toBe(lastSource.disk + 1);
  } finally {
    await aTls.undefine(vm.id, { deleteLocalDisks: true }).catch(() => undefined);
    await bTls.undefine(vm.id, { deleteLocalDisks: true }).catch(() => undefined);
    await aTls.close();
    await bTls.close();
  }
});
