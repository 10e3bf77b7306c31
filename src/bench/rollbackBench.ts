// `npm run bench -- rollback`: how long RollingBack takes on real guests (qemu driver, TCG) once
// the target ran — the case of a failed Verifying — step by step, through the agent's own
// operation handlers: the rollback the live machine plans now, against the one it planned before
// (remove the target with a polite power-off, then boot the source from its disk). Each part is
// timed, and then how long until the guest heartbeats again on the source.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runOperation, type OperationContext } from '../agent/operationKinds';
import type { StorageKind } from '../api/types';
import type { Driver, HostConfig } from '../drivers/driver';
import { QemuDriver } from '../drivers/qemu';
import { GUEST_IMAGE, guestKitImagesDir } from '../local/guestKit';
import { undoSteps } from '../machines';
import type { MoveContext, Step } from '../machines/vocabulary';
import type { OperationRequest } from '../protocol/operations';
import type { VmSpec } from '../protocol/vm';

const MiB = 2 ** 20;

interface Part {
  name: string;
  ms: number;
}

interface RollbackRun {
  label: string;
  parts: Part[];
  /** From the first rollback step to the guest's next heartbeat on the source. */
  serviceBackMs: number;
}

function host(root: string, name: string, ports: [number, number], imagesDir: string): HostConfig {
  const dir = path.join(root, name);
  return {
    nodeName: name,
    stateDir: path.join(dir, 'state'),
    localDir: path.join(dir, 'local'),
    sharedDir: path.join(root, 'shared'),
    imagesDir,
    migrationAddress: '127.0.0.1',
    migrationPorts: ports,
    capacity: { cpu: 2, memoryBytes: 4096 * MiB },
    storage: ['Local', 'SharedFile'],
  };
}

/** The agent's handler for one operation, with what a standalone run needs of its context. */
async function operate(driver: Driver, request: OperationRequest): Promise<void> {
  const ctx: OperationContext = {
    driver,
    signal: new AbortController().signal,
    pollMs: 250,
    releaseVm: () => undefined,
    progress: () => undefined,
    reached: () => false,
    checkpoint: async () => undefined,
    fetchDisk: () => Promise.reject(new Error('no disk copies here')),
  };
  await runOperation(request, ctx);
}

async function heartbeatAbove(driver: Driver, id: string, above: number, timeoutMs = 180_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hb = (await driver.list()).find((v) => v.id === id)?.heartbeat;
    if (hb !== undefined && hb > above) return hb;
    if (Date.now() > deadline) throw new Error(`no heartbeat above ${above} from ${id} within ${timeoutMs / 1000} s`);
    await sleep(50);
  }
}

async function heartbeatOf(driver: Driver, id: string): Promise<number> {
  return heartbeatAbove(driver, id, -1);
}

/**
 * The VM running on a, migrated live to b, and running there: a target that ran. `booting`: moved
 * before its guest came up (issue 15's case: a move applied right after the VM appeared).
 */
async function targetRan(a: Driver, b: Driver, vm: VmSpec, block: boolean, booting: boolean): Promise<void> {
  await operate(a, { kind: 'ensureVm', vm, disks: 'keep', start: true });
  if (!booting) await heartbeatOf(a, vm.id);
  const machine = (await a.list()).find((v) => v.id === vm.id)?.machine;
  const incoming = { ...vm, ...(machine ? { machine } : {}) };
  const tuning = { bandwidthMiBps: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false };
  const endpoint = await b.prepareIncoming(incoming, { blockMigration: block, tuning });
  await operate(a, { kind: 'migrate', vm, to: endpoint, tuning, blockMigration: block });
  await operate(b, { kind: 'completeIncoming', vm: incoming });
  if (!booting) await heartbeatOf(b, vm.id);
}

async function rollBack(label: string, a: Driver, b: Driver, vm: VmSpec, steps: Step[]): Promise<RollbackRun> {
  const last = (await a.list()).find((v) => v.id === vm.id)?.heartbeat ?? -1;
  const parts: Part[] = [];
  const t0 = Date.now();
  for (const s of steps) {
    const t = Date.now();
    await operate(s.role === 'source' ? a : b, { ...s.request, vm } as OperationRequest);
    parts.push({ name: `${s.name} (${s.request.kind}${'discard' in s.request && s.request.discard ? ', discard' : ''})`, ms: Date.now() - t });
  }
  const t = Date.now();
  // A resumed guest goes on past its last heartbeat; one booted from disk counts from 0 in a new log.
  const resumed = steps.some((s) => s.request.kind === 'resumeSource');
  await heartbeatAbove(a, vm.id, resumed ? last : -1);
  parts.push({ name: 'until the guest heartbeats on the source', ms: Date.now() - t });
  return { label, parts, serviceBackMs: Date.now() - t0 };
}

/** What the rollback of a live move whose target ran looked like before this change. */
const BEFORE: Step[] = [
  { name: 'remove-target', role: 'target', resources: 'after', request: { kind: 'deleteVm', deleteLocalDisks: true } },
  { name: 'restart-source', role: 'source', resources: 'before', request: { kind: 'startVm' } },
];

function liveContext(storage: StorageKind): MoveContext {
  const block = storage === 'Local';
  const r = { cpu: 1, memoryBytes: 256 * MiB };
  return {
    moveType: 'Live',
    variant: block ? 'BlockMigration' : 'SharedStorage',
    reason: 'bench',
    sourceNode: 'a',
    targetNode: 'b',
    vmRunning: true,
    before: r,
    after: r,
    policy: { maxDowntimeMs: 300, bandwidthMiBps: 0, completionTimeoutPerGiB: 60, progressTimeoutSeconds: 60, allowAutoConverge: true, allowPostCopy: false, maxAttempts: 3 },
    bytesToMove: r.memoryBytes,
    sharedDisks: !block,
    attempt: 1,
    rung: 0,
    stepTry: 0,
    cancelRequested: false,
    cancelIgnored: false,
    reached: { sourceStopped: false, targetPrepared: true, migrationStarted: true, targetStarted: true },
    unreachable: { source: false, target: false },
  };
}

export async function benchRollback(o: { quick: boolean }, log: (s: string) => void = console.log): Promise<void> {
  const imagesDir = guestKitImagesDir();
  // Short: QEMU's unix sockets live below it (at most 107 bytes).
  const root = mkdtempSync(path.join(tmpdir(), 'vmove-rb-'));
  // The agent's own default: a polite power-off waits up to 30 s.
  const a = new QemuDriver(host(root, 'a', [49_700, 49_719], imagesDir), { accelerator: 'tcg' });
  const b = new QemuDriver(host(root, 'b', [49_720, 49_739], imagesDir), { accelerator: 'tcg' });
  const runs: RollbackRun[] = [];
  let n = 0;
  try {
    const cases = (o.quick ? [['Local', true]] : [['Local', true], ['SharedFile', true], ['Local', false], ['SharedFile', false]]) as [StorageKind, boolean][];
    for (const [storage, booting] of cases) {
      for (const [when, steps] of [
        ['before', BEFORE],
        ['now', undoSteps(liveContext(storage))],
      ] as const) {
        const label = `${storage}, ${booting ? 'booting' : 'up'}, ${when}`;
        n += 1;
        const vm: VmSpec = { id: `bench_rb-${n}`, uid: `00000000-0000-4000-8000-00000000000${n}`, image: GUEST_IMAGE, cpu: 1, memoryBytes: 256 * MiB, disks: [{ name: 'root', sizeBytes: 128 * MiB, storage }] };
        log(`- ${storage} disk, guest ${booting ? 'still booting' : 'up'} when it moved, rollback ${when} …`);
        await targetRan(a, b, vm, storage === 'Local', booting);
        runs.push(await rollBack(label, a, b, vm, steps));
        for (const p of runs.at(-1)!.parts) log(`    ${p.name.padEnd(44)} ${(p.ms / 1000).toFixed(2)} s`);
        await operate(a, { kind: 'deleteVm', vm, deleteLocalDisks: true, deleteSharedDisks: true, discard: true });
      }
    }
    log('');
    log('rollback after the target ran (qemu, TCG): from its first step until the guest heartbeats on the source again');
    for (const r of runs) log(`  ${r.label.padEnd(30)} ${(r.serviceBackMs / 1000).toFixed(2)} s   (${r.parts.map((p) => `${p.name.split(' ')[0]} ${(p.ms / 1000).toFixed(2)} s`).join(', ')})`);
  } finally {
    await a.close();
    await b.close();
    rmSync(root, { recursive: true, force: true });
  }
}
