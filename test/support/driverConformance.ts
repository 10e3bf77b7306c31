// A battery every Driver must pass, run through real agents (HTTP, auth, operation executor)
// around a pair of hosts: lifecycle idempotency, opId semantics, live migration over shared
// storage and with block migration, abort, cold disk copy between agents, hotplug, verify.
//
//   describeDriverConformance('sim', async (workDir) => ({ hosts: [a, b], image, cleanup }), { … });
//
// It is driver-agnostic: the driver's author supplies the hosts, an image both can boot, and
// timeouts that fit the hypervisor (QEMU under TCG takes seconds per boot).
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type RunningAgent } from '../../src/agent/agent';
import { AgentClient, AgentRequestError } from '../../src/agent/client';
import type { OperationRequest, OperationStatus } from '../../src/protocol/operations';
import type { Driver, HostConfig } from '../../src/drivers/driver';
import type { MigrationTuning } from '../../src/protocol/migration';
import type { DiskSpec, VmInfo, VmSpec } from '../../src/protocol/vm';
import type { StorageKind } from '../../src/api/types';
import { pollUntil } from './poll';

const MiB = 1024 * 1024;

export interface ConformanceHost {
  config: HostConfig;
  driver: Driver;
}

export interface ConformanceSetup {
  /** Two hosts sharing `sharedDir` and `imagesDir`, with distinct migration port ranges. */
  hosts: [ConformanceHost, ConformanceHost];
  /** An image both hosts can boot. */
  image: string;
  cleanup(): Promise<void>;
}

export interface ConformanceOptions {
  /** Longest a VM takes to boot and show a heartbeat (ms). */
  bootMs: number;
  /** Longest a live migration of the test VM takes (ms). */
  migrationMs: number;
  /** Longest a quick operation (define, stop, delete, …) takes (ms). Default 15 s. */
  operationMs?: number;
  /** Window in which a running guest's heartbeat must advance (ms). Default 3 s. */
  verifyWindowMs?: number;
  memoryBytes?: number;
  diskBytes?: number;
  kernelArgs?: string;
  /** Added to every test VM (e.g. a guest model). */
  annotations?: Record<string, string>;
  /** Storage of the shared-storage live migration's disk. Default SharedFile. */
  sharedStorage?: Exclude<StorageKind, 'Local'>;
  /** Resources to hotplug a running test VM to; false when the driver has no hotplug. */
  hotplug?: { cpu: number; memoryBytes: number } | false;
  /** Something that identifies a disk's content, to tell a copied disk from a fresh one. */
  diskFingerprint?(host: ConformanceHost, vm: VmSpec, disk: DiskSpec): Promise<string>;
  /** Close the host's driver and open it again: VMs must survive (as they survive an agent restart). */
  reopenDriver?(host: ConformanceHost): Promise<Driver>;
}

const SECRET = 'conformance-shared-secret-0123456789';

export function describeDriverConformance(
  name: string,
  makeHosts: (workDir: string) => Promise<ConformanceSetup>,
  options: ConformanceOptions,
): void {
  const opMs = options.operationMs ?? 15_000;
  const windowMs = options.verifyWindowMs ?? 3_000;
  const memoryBytes = options.memoryBytes ?? 256 * MiB;
  const diskBytes = options.diskBytes ?? 64 * MiB;
  const client = new AgentClient({ token: () => SECRET, timeoutMs: 30_000 });

  describe(`driver conformance: ${name}`, () => {
    let workDir: string;
    let setup: ConformanceSetup;
    let agents: [RunningAgent, RunningAgent];
    let seq = 0;

    const start = (host: ConformanceHost) => startAgent({ host: host.config, driver: host.driver, auth: { mode: 'shared-secret', secret: SECRET }, insecureHttp: true, pollMs: 100 });

    beforeAll(async () => {
      workDir = await mkdtemp(join(tmpdir(), `vmove-conformance-${name}-`));
      setup = await makeHosts(workDir);
      agents = [await start(setup.hosts[0]), await start(setup.hosts[1])];
    }, 120_000);

    afterAll(async () => {
      await Promise.all((agents ?? []).map((a) => a.stop()));
      await setup?.cleanup();
      if (workDir) await rm(workDir, { recursive: true, force: true });
    }, 120_000);

    function newVm(label: string, storage: StorageKind | null, extra: Partial<VmSpec> = {}): VmSpec {
      seq += 1;
      return {
        id: `conformance_${label}-${seq}`,
        uid: randomUUID(),
        image: setup.image,
        cpu: 1,
        memoryBytes,
        disks: storage ? [{ name: 'root', sizeBytes: diskBytes, storage }] : [],
        ...(options.kernelArgs ? { kernelArgs: options.kernelArgs } : {}),
        annotations: { ...options.annotations },
        ...extra,
      };
    }

    /** PUT an operation and wait for it to leave Running. */
    async function run(agent: RunningAgent, req: OperationRequest, timeoutMs = opMs, opId = `op-${randomUUID()}`): Promise<OperationStatus> {
      const deadline = Date.now() + timeoutMs;
      let st = await client.putOperation(agent.endpoint, opId, req, { waitMs: Math.min(timeoutMs, 20_000) });
      while (st.state === 'Running' && Date.now() < deadline) {
        st = (await client.getOperation(agent.endpoint, opId, { waitMs: Math.min(deadline - Date.now(), 20_000) }))!;
      }
      return st;
    }

    async function ok(agent: RunningAgent, req: OperationRequest, timeoutMs = opMs): Promise<OperationStatus> {
      const st = await run(agent, req, timeoutMs);
      if (st.state !== 'Succeeded') throw new Error(`${req.kind} on ${agent.node}: ${st.state}: ${st.error?.message ?? st.message ?? ''}`);
      return st;
    }

    async function info(agent: RunningAgent, id: string): Promise<VmInfo | undefined> {
      return (await client.listVms(agent.endpoint)).find((v) => v.id === id);
    }

    const waitFor = <T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>): Promise<T> => pollUntil(what, probe, { timeoutMs, intervalMs: 100 });

    /** Heartbeat shown once the guest booted. */
    const heartbeatOf = (agent: RunningAgent, id: string) =>
      waitFor(`a heartbeat of ${id} on ${agent.node}`, options.bootMs, async () => {
        const v = await info(agent, id);
        return v?.state === 'Running' && v.heartbeat !== undefined ? v.heartbeat : undefined;
      });

    async function cleanupVm(vm: VmSpec): Promise<void> {
      for (const a of agents) await run(a, { kind: 'deleteVm', vm, deleteLocalDisks: true }).catch(() => undefined);
    }

    const tuning = (over: Partial<MigrationTuning> = {}): MigrationTuning => ({
      bandwidthMiBps: 0,
      maxDowntimeMs: 500,
      autoConverge: false,
      postCopy: false,
      ...over,
    });

    test('ensureVm, startVm, stopVm and deleteVm can each be repeated', async () => {
      const [a] = agents;
      const vm = newVm('lifecycle', 'Local');
      try {
        await ok(a, { kind: 'ensureVm', vm, disks: 'keep', start: false });
        await ok(a, { kind: 'ensureVm', vm, disks: 'keep', start: false });
        expect((await info(a, vm.id))?.state).toBe('Stopped');

        await ok(a, { kind: 'startVm', vm }, options.bootMs);
        await ok(a, { kind: 'startVm', vm }, options.bootMs);
        expect(await info(a, vm.id)).toMatchObject({ state: 'Running', uid: vm.uid, cpu: 1, memoryBytes });

        await ok(a, { kind: 'stopVm', vm });
        await ok(a, { kind: 'stopVm', vm });
        expect((await info(a, vm.id))?.state).toBe('Stopped');

        await ok(a, { kind: 'deleteVm', vm, deleteLocalDisks: true });
        await ok(a, { kind: 'deleteVm', vm, deleteLocalDisks: true });
        expect(await info(a, vm.id)).toBeUndefined();
      } finally {
        await cleanupVm(vm);
      }
    }, 4 * options.bootMs + 8 * opMs);

    test('an opId acts once: re-sending it answers the first result; another body for it is refused', async () => {
      const [a] = agents;
      const vm = newVm('opid', 'Local');
      try {
        await ok(a, { kind: 'ensureVm', vm, disks: 'keep', start: false });
        const startId = `start-${randomUUID()}`;
        const first = await run(a, { kind: 'startVm', vm }, options.bootMs, startId);
        expect(first.state).toBe('Succeeded');
        await ok(a, { kind: 'stopVm', vm });
        // The controller re-sends the old start after a crash: nothing happens, the answer is the first one.
        const again = await client.putOperation(a.endpoint, startId, { kind: 'startVm', vm });
        expect(again).toEqual(first);
        expect((await info(a, vm.id))?.state).toBe('Stopped');
        await expect(client.putOperation(a.endpoint, startId, { kind: 'stopVm', vm })).rejects.toMatchObject({ status: 409 });
        await expect(client.putOperation(a.endpoint, startId, { kind: 'stopVm', vm })).rejects.toBeInstanceOf(AgentRequestError);
      } finally {
        await cleanupVm(vm);
      }
    }, 2 * options.bootMs + 6 * opMs);

    test('an unknown image fails permanently', async () => {
      const [a] = agents;
      const vm = newVm('noimage', 'Local', { image: 'no-such-image-for-conformance' });
      try {
        const st = await run(a, { kind: 'ensureVm', vm, disks: 'keep', start: true }, options.bootMs);
        expect(st.state).toBe('Failed');
        expect(st.error).toMatchObject({ transient: false });
        expect(st.error!.message).toMatch(/image/i);
      } finally {
        await cleanupVm(vm);
      }
    }, options.bootMs + 4 * opMs);

    test('verify: a running guest makes progress; a stopped VM verifies only as stopped', async () => {
      const [a] = agents;
      const vm = newVm('verify', 'Local');
      try {
        await ok(a, { kind: 'ensureVm', vm, disks: 'keep', start: true }, options.bootMs);
        await heartbeatOf(a, vm.id);
        const running = await ok(a, { kind: 'verify', vm, windowMs, expectRunning: true }, windowMs + opMs);
        expect(running.message).toMatch(/heartbeat/);
        await ok(a, { kind: 'stopVm', vm });
        await ok(a, { kind: 'verify', vm, windowMs, expectRunning: false });
        const wrong = await run(a, { kind: 'verify', vm, windowMs, expectRunning: true }, windowMs + opMs);
        expect(wrong.state).toBe('Failed');
        expect(wrong.error?.message).toMatch(/Stopped/);
      } finally {
        await cleanupVm(vm);
      }
    }, 2 * options.bootMs + 3 * windowMs + 8 * opMs);

    test('live migration over shared storage: the source ends Migrated, the guest runs on at the target', async () => {
      const [a, b] = agents;
      const vm = newVm('live', options.sharedStorage ?? 'SharedFile');
      try {
        await ok(a, { kind: 'ensureVm', vm, disks: 'keep', start: true }, options.bootMs);
        await heartbeatOf(a, vm.id);
        const prep = await ok(b, { kind: 'prepareIncoming', vm, blockMigration: false });
        expect(prep.endpoint?.migrationUri).toBeTruthy();
        expect((await info(b, vm.id))?.state).toBe('Incoming');

        const mig = await ok(a, { kind: 'migrate', vm, to: prep.endpoint!, tuning: tuning(), blockMigration: false }, options.migrationMs);
        expect(mig.migration).toMatchObject({ state: 'completed', memoryRemainingBytes: 0 });
        expect(mig.migration!.memoryTotalBytes).toBeGreaterThan(0);
        const source = await info(a, vm.id);
        expect(source?.state).toBe('Migrated');

        await ok(b, { kind: 'completeIncoming', vm }, options.bootMs);
        await ok(b, { kind: 'completeIncoming', vm });
        const target = await info(b, vm.id);
        expect(target?.state).toBe('Running');
        // The guest went on where it was, it did not boot again.
        if (source?.heartbeat !== undefined) {
          const hb = await heartbeatOf(b, vm.id);
          expect(hb).toBeGreaterThanOrEqual(source.heartbeat);
        }
        await ok(b, { kind: 'verify', vm, windowMs, expectRunning: true }, windowMs + opMs);
        // The controller's clean-up of the source.
        await ok(a, { kind: 'deleteVm', vm, deleteLocalDisks: true });
        expect(await info(a, vm.id)).toBeUndefined();
        expect((await info(b, vm.id))?.state).toBe('Running');
      } finally {
        await cleanupVm(vm);
      }
    }, 2 * options.bootMs + options.migrationMs + windowMs + 10 * opMs);

    test('aborting a migration leaves the VM running on the source', async () => {
      const [a, b] = agents;
      const vm = newVm('abort', options.sharedStorage ?? 'SharedFile');
      try {
        await ok(a, { kind: 'ensureVm', vm, disks: 'keep', start: true }, options.bootMs);
        await heartbeatOf(a, vm.id);
        const prep = await ok(b, { kind: 'prepareIncoming', vm, blockMigration: false });
        // 1 MiB/s: the migration cannot finish before the abort.
        const migId = `migrate-${randomUUID()}`;
        const req: OperationRequest = { kind: 'migrate', vm, to: prep.endpoint!, tuning: tuning({ bandwidthMiBps: 1, maxDowntimeMs: 1 }), blockMigration: false };
        await client.putOperation(a.endpoint, migId, req);
        await waitFor('the migration to transfer', opMs, async () => {
          const st = await client.getOperation(a.endpoint, migId);
          return st?.migration?.state === 'active' && st.migration.memoryTransferredBytes > 0;
        });
        // A changed tuning is the one change allowed for a running migration.
        const tuned = await client.putOperation(a.endpoint, migId, { ...req, tuning: tuning({ bandwidthMiBps: 2, maxDowntimeMs: 1 }) });
        expect(tuned.state).toBe('Running');

        await ok(a, { kind: 'abortMigration', vm });
        const ended = await client.getOperation(a.endpoint, migId, { waitMs: opMs });
        expect(ended?.state).toBe('Failed');
        expect(ended?.migration?.state).toBe('cancelled');
        expect((await info(a, vm.id))?.state).toBe('Running');
        await ok(a, { kind: 'verify', vm, windowMs, expectRunning: true }, windowMs + opMs);
        await ok(a, { kind: 'abortMigration', vm });
      } finally {
        await cleanupVm(vm);
      }
    }, 2 * options.bootMs + windowMs + 10 * opMs);

    test('block migration moves local disks with the VM', async () => {
      const [a, b] = agents;
      const vm = newVm('block', 'Local');
      try {
        await ok(a, { kind: 'ensureVm', vm, disks: 'keep', start: true }, options.bootMs);
        await heartbeatOf(a, vm.id);
        const prep = await ok(b, { kind: 'prepareIncoming', vm, blockMigration: true });
        const mig = await ok(a, { kind: 'migrate', vm, to: prep.endpoint!, tuning: tuning(), blockMigration: true }, options.migrationMs);
        expect(mig.migration?.state).toBe('completed');
        await ok(b, { kind: 'completeIncoming', vm }, options.bootMs);
        await ok(b, { kind: 'verify', vm, windowMs, expectRunning: true }, windowMs + opMs);
        if (options.diskFingerprint) {
          const disk = vm.disks[0]!;
          expect(await options.diskFingerprint(setup.hosts[1], vm, disk)).toBe(await options.diskFingerprint(setup.hosts[0], vm, disk));
        }
      } finally {
        await cleanupVm(vm);
      }
    }, 2 * options.bootMs + options.migrationMs + windowMs + 8 * opMs);

    test('copyDisks pulls a stopped VM\'s local disks from the source agent', async () => {
      const [a, b] = agents;
      const vm = newVm('copy', 'Local');
      try {
        await ok(a, { kind: 'ensureVm', vm, disks: 'keep', start: true }, options.bootMs);
        await heartbeatOf(a, vm.id);
        // A running guest's disk is refused: it would be copied torn.
        const early = await run(b, { kind: 'copyDisks', vm, from: { endpoint: a.endpoint } });
        expect(early.state).toBe('Failed');
        await ok(a, { kind: 'stopVm', vm });

        const copy = await ok(b, { kind: 'copyDisks', vm, from: { endpoint: a.endpoint } }, options.migrationMs);
        expect(copy.copy).toEqual({ totalBytes: diskBytes, copiedBytes: diskBytes });
        if (options.diskFingerprint) {
          const disk = vm.disks[0]!;
          expect(await options.diskFingerprint(setup.hosts[1], vm, disk)).toBe(await options.diskFingerprint(setup.hosts[0], vm, disk));
        }
        // ensureVm keeps the copied disk (it does not recreate it from the image) and boots it.
        await ok(b, { kind: 'ensureVm', vm, disks: 'keep', start: true }, options.bootMs);
        await heartbeatOf(b, vm.id);
        await ok(b, { kind: 'verify', vm, windowMs, expectRunning: true }, windowMs + opMs);
      } finally {
        await cleanupVm(vm);
      }
    }, 3 * options.bootMs + options.migrationMs + windowMs + 10 * opMs);

    if (options.hotplug) {
      const want = options.hotplug;
      test('hotplug changes CPUs and memory of a running VM', async () => {
        const [a] = agents;
        const vm = newVm('hotplug', 'Local');
        try {
          await ok(a, { kind: 'ensureVm', vm, disks: 'keep', start: true }, options.bootMs);
          await heartbeatOf(a, vm.id);
          await ok(a, { kind: 'hotplug', vm, cpu: want.cpu, memoryBytes: want.memoryBytes }, options.bootMs);
          expect(await info(a, vm.id)).toMatchObject({ state: 'Running', cpu: want.cpu, memoryBytes: want.memoryBytes });
          await ok(a, { kind: 'verify', vm, windowMs, expectRunning: true }, windowMs + opMs);
        } finally {
          await cleanupVm(vm);
        }
      }, 2 * options.bootMs + windowMs + 6 * opMs);
    }

    if (options.reopenDriver) {
      const reopen = options.reopenDriver;
      test('VMs keep running across an agent restart, and the new agent answers for old operations', async () => {
        const vm = newVm('restart', 'Local');
        try {
          const startId = `ensure-${randomUUID()}`;
          const first = await run(agents[0], { kind: 'ensureVm', vm, disks: 'keep', start: true }, options.bootMs, startId);
          expect(first.state).toBe('Succeeded');
          const before = await heartbeatOf(agents[0], vm.id);
          await agents[0].stop();
          setup.hosts[0].driver = await reopen(setup.hosts[0]);
          agents[0] = await start(setup.hosts[0]);
          expect(await client.getOperation(agents[0].endpoint, startId)).toEqual(first);
          const after = await waitFor('the heartbeat to go on', options.bootMs, async () => {
            const v = await info(agents[0], vm.id);
            return v?.state === 'Running' && (v.heartbeat ?? -1) > before ? v.heartbeat : undefined;
          });
          expect(after).toBeGreaterThan(before);
        } finally {
          await cleanupVm(vm);
        }
      }, 3 * options.bootMs + 6 * opMs);
    }
  });
}
