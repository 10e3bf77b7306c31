// The qemu driver: VMs are qemu-system-x86_64 processes this driver starts detached and drives
// over QMP (no libvirt). Everything it knows lives in files under the host's state folder
// (definition, pid file, QMP socket, serial log), so a restarted agent finds its VMs again.
//
// Live migration follows QEMU's documented sequences: the target waits with `-incoming defer -S`
// (paused until completeIncoming, as libvirt does), local disks are mirrored over NBD
// (blockdev-mirror to the target's nbd export, migrate once every mirror is ready, cancel the
// mirrors once the migration completed), and the migration stream may be TLS-protected.
import { readFile, readdir, rename, rm, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { componentLogger } from '../../log';
import type { HostCapabilities } from '../../protocol/host';
import type { IncomingEndpoint, MigrationStatus, MigrationTuning } from '../../protocol/migration';
import type { VmInfo, VmSpec, VmState } from '../../protocol/vm';
import { VmLocks } from '../../vmLocks';
import { directBoot } from '../common/directBoot';
import { type DiskFile, exists, writeDiskFile } from '../common/disks';
import { permanent, transient } from '../common/errors';
import { hostCapabilities } from '../common/hostCapabilities';
import { DEFAULT_LIMITS, type MachineLimits } from '../common/machineLimits';
import { imageFiles, vmDiskFiles } from '../common/paths';
import { readHeartbeat } from '../common/serialLog';
import { uriHost } from '../common/uriHost';
import {
  createIncomingDisks,
  deleteDiskFiles,
  diskIndex,
  ensureDiskFiles,
  hasLocalDisks,
  readVmDisk,
  requireBlockMigrationForLocalDisks,
  requireDiskFiles,
} from '../common/vmDisks';
import { NotArrivedYet, type DiskReader, type Driver, type HostConfig } from '../driver';
import { type Accelerator, type LaunchDisk, diskNode, qemuArgs } from './commandLine';
import {
  HotplugImpossible,
  type HotplugStep,
  type HotpluggableCpuSlot,
  type MachineLayout,
  applyStep,
  bootLayout,
  layoutCpus,
  layoutMemoryBytes,
  parseLayout,
  planHotplug,
} from './machine';
import {
  type ArmedFeatures,
  type BlockJob,
  type DiskProgress,
  type QueryMigrate,
  capabilityList,
  diskProgress,
  migrationParameters,
  migrationState,
  toMigrationStatus,
} from './migrationPlan';
import { vmFiles, vmsRoot } from './paths';
import { freePorts } from './ports';
import { findQemu, spawnDetached, terminate, waitGone } from './processes';
import { QmpClient, QmpCommandError, type QmpEvent } from './qmp';
import { setTimeout as sleep } from 'node:timers/promises';

const log = componentLogger('qemu-driver');

export interface QemuDriverOptions {
  /** Accelerator, chosen explicitly (default tcg): never QEMU's kvm:tcg fallback. */
  accelerator?: Accelerator;
  /** qemu-system-x86_64 binary (default from PATH). */
  binary?: string;
  /**
   * Folder with ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem:
   * migration streams and NBD exports use TLS when set (unless `tls` is false).
   */
  tlsDir?: string;
  tls?: boolean;
  /** Hotplug headroom every VM is started with (max CPUs, max memory, DIMM slots). */
  limits?: Partial<MachineLimits>;
  /** How long stop waits for the guest to power off after the ACPI power button before quitting QEMU. */
  shutdownTimeoutMs?: number;
}

/** What a host holds about one VM (`<state>/qemu/vms/<id>/vm.json`). */
interface VmRecord {
  spec: VmSpec;
  /** Layout of the running process, or of the next boot. */
  layout: MachineLayout;
  /** Target side of a live migration, until completeIncoming. */
  incoming?: { endpoint: IncomingEndpoint; blockMigration: boolean; nbdExports: string[] };
  /** Source side of a live migration, until it is cancelled or the source is resumed/stopped. */
  outgoing?: Outgoing;
}

interface Outgoing {
  endpoint: IncomingEndpoint;
  blockMigration: boolean;
  armed: ArmedFeatures;
  tuning: MigrationTuning;
  /** Indices of the disks being mirrored. */
  mirrored: number[];
  /** `migrate` has been issued. */
  migrateIssued: boolean;
  postCopyStarted: boolean;
  /** Last disk progress seen (QEMU forgets block jobs once they end). */
  disk: DiskProgress;
}

const TLS_SERVER = 'vmove-tls-server';
const TLS_CLIENT = 'vmove-tls-client';
const mirrorNode = (i: number): string => `mirror${i}`;

export class QemuDriver implements Driver {
  readonly kind = 'qemu' as const;
  private readonly accelerator: Accelerator;
  private readonly binary: string;
  private readonly limits: MachineLimits;
  private readonly shutdownTimeoutMs: number;
  private readonly tlsDir: string | undefined;
  private readonly clients = new Map<string, QmpClient>();
  /** One operation per VM at a time: QMP sequences must not interleave. */
  private readonly locks = new VmLocks();

  constructor(
    private readonly host: HostConfig,
    opts: QemuDriverOptions = {},
  ) {
    this.accelerator = opts.accelerator ?? 'tcg';
    this.binary = opts.binary ?? 'qemu-system-x86_64';
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.shutdownTimeoutMs = opts.shutdownTimeoutMs ?? 30_000;
    this.tlsDir = opts.tlsDir !== undefined && opts.tls !== false ? opts.tlsDir : undefined;
  }

  capabilities(): HostCapabilities {
    return hostCapabilities(this.host, 'qemu', this.accelerator);
  }

  // ------------------------------------------------------------------ inventory

  async list(): Promise<VmInfo[]> {
    let ids: string[];
    try {
      ids = (await readdir(vmsRoot(this.host), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return [];
    }
    const out: VmInfo[] = [];
    for (const id of ids.sort()) {
      const rec = await this.readRecord(id);
      if (!rec) continue;
      const state = await this.vmState(id, rec);
      const info: VmInfo = {
        id,
        uid: rec.spec.uid,
        state,
        cpu: state === 'Stopped' ? rec.spec.cpu : layoutCpus(rec.layout),
        memoryBytes: state === 'Stopped' ? rec.spec.memoryBytes : layoutMemoryBytes(rec.layout),
        machine: JSON.stringify(rec.layout),
      };
      const heartbeat = state === 'Stopped' ? undefined : await readHeartbeat(vmFiles(this.host, id).serialLog);
      if (heartbeat !== undefined) info.heartbeat = heartbeat;
      out.push(info);
    }
    return out;
  }

  private async vmState(id: string, rec: VmRecord): Promise<VmState> {
    const pid = await this.pid(id);
    if (pid === undefined) return 'Stopped';
    let status: string;
    try {
      status = (await this.qmp(id).execute<{ status: string }>('query-status', undefined, { timeoutMs: 5000 })).status;
    } catch (err) {
      log.warn({ vm: id, err: (err as Error).message }, 'QEMU process does not answer QMP');
      return 'Crashed';
    }
    switch (status) {
      case 'running':
      case 'finish-migrate':
        return 'Running';
      case 'inmigrate':
        return 'Incoming';
      case 'postmigrate':
        return 'Migrated';
      case 'prelaunch':
      case 'paused':
      case 'suspended':
      case 'restore-vm':
      case 'save-vm':
        return rec.incoming ? 'Incoming' : 'Paused';
      case 'shutdown':
        return 'Stopped';
      default:
        // internal-error, io-error, guest-panicked, watchdog, colo
        return 'Crashed';
    }
  }

  // ------------------------------------------------------------------ definition and disks

  async ensureDisks(vm: VmSpec, how: 'keep' | 'fresh'): Promise<void> {
    return this.locked(vm.id, async () => {
      const files = await this.diskFiles(vm);
      if (how === 'fresh' && (await this.pid(vm.id)) !== undefined) {
        throw permanent(`cannot recreate the disks of ${vm.id} while it runs`);
      }
      await ensureDiskFiles(vm, files, how);
    });
  }

  async define(vm: VmSpec): Promise<void> {
    return this.locked(vm.id, async () => {
      imageFiles(this.host, vm.image); // validates the name
      const current = await this.readRecord(vm.id);
      const running = (await this.pid(vm.id)) !== undefined;
      const layout = running && current ? current.layout : (parseLayout(vm.machine) ?? this.bootLayoutOf(vm));
      await this.writeRecord(vm.id, { ...current, spec: vm, layout });
    });
  }

  async undefine(id: string, opts: { deleteLocalDisks: boolean; deleteSharedDisks?: boolean }): Promise<void> {
    return this.locked(id, async () => {
      const rec = await this.readRecord(id);
      await this.kill(id);
      if (rec) await deleteDiskFiles(rec.spec, await this.diskFiles(rec.spec), opts);
      await rm(vmFiles(this.host, id).dir, { recursive: true, force: true });
    });
  }

  // ------------------------------------------------------------------ power

  async start(id: string): Promise<void> {
    return this.locked(id, async () => {
      const rec = await this.requireRecord(id);
      if ((await this.pid(id)) !== undefined) {
        const status = await this.runStatus(id);
        if (status === 'running') return;
        // Paused after a migration, or a target that never got its stream: that state is stale,
        // the disks are the truth.
        log.info({ vm: id, status }, 'replacing a stale QEMU process with a fresh boot');
        await this.kill(id);
      }
      const layout = this.bootLayoutOf(rec.spec);
      const fresh: VmRecord = { spec: rec.spec, layout };
      await this.writeRecord(id, fresh);
      await this.launch(fresh, false);
    });
  }

  async stop(id: string): Promise<void> {
    return this.locked(id, async () => {
      const pid = await this.pid(id);
      if (pid === undefined) return;
      const status = await this.runStatus(id).catch(() => 'unknown');
      if (status === 'running' && this.shutdownTimeoutMs > 0) {
        await this.qmp(id).execute('system_powerdown').catch(() => undefined);
        if (await waitGone(pid, this.shutdownTimeoutMs)) return this.forget(id);
        log.warn({ vm: id }, `guest did not power off within ${this.shutdownTimeoutMs} ms; quitting QEMU`);
      }
      await this.kill(id);
    });
  }

  // ------------------------------------------------------------------ live migration: target

  async prepareIncoming(vm: VmSpec, opts: { blockMigration: boolean; tuning?: MigrationTuning }): Promise<IncomingEndpoint> {
    return this.locked(vm.id, async () => {
      const existing = await this.readRecord(vm.id);
      if ((await this.pid(vm.id)) !== undefined) {
        const status = await this.runStatus(vm.id);
        if (existing?.incoming && (status === 'inmigrate' || status === 'prelaunch')) return existing.incoming.endpoint;
        if (status === 'running') throw permanent(`${vm.id} already runs on ${this.host.nodeName}`);
        await this.kill(vm.id);
      }
      requireBlockMigrationForLocalDisks(vm, opts.blockMigration);
      await createIncomingDisks(this.host, vm, await this.diskFiles(vm));
      const layout = parseLayout(vm.machine) ?? this.bootLayoutOf(vm);
      const rec: VmRecord = { spec: vm, layout };
      await this.writeRecord(vm.id, rec);
      await this.launch(rec, true);

      const qmp = this.qmp(vm.id);
      const multifdChannels = opts.tuning?.multifdChannels ?? 0;
      const allowPostCopy = opts.tuning?.allowPostCopy !== false && multifdChannels === 0;
      const postCopy = allowPostCopy && (await this.trySetCapability(qmp, 'postcopy-ram'));
      await qmp.execute('migrate-set-capabilities', {
        capabilities: capabilityList({ postCopy, autoConverge: false, multifdChannels }),
      });
      const tls = this.tlsDir !== undefined;
      if (tls) await this.addTlsCreds(qmp, 'server');
      await qmp.execute('migrate-set-parameters', {
        'tls-creds': tls ? TLS_SERVER : '',
        ...(multifdChannels > 0 ? { 'multifd-channels': multifdChannels } : {}),
      });

      const address = this.host.migrationAddress;
      const taken = await this.portsInUse();
      const [migrationPort, nbdPort] = await freePorts(address, this.host.migrationPorts, taken, opts.blockMigration ? 2 : 1);
      const endpoint: IncomingEndpoint = { migrationUri: `tcp:${uriHost(address)}:${migrationPort}`, tls, postCopy, multifdChannels };
      const nbdExports: string[] = [];
      if (opts.blockMigration && hasLocalDisks(vm)) {
        await qmp.execute('nbd-server-start', {
          addr: { type: 'inet', data: { host: address, port: String(nbdPort) } },
          ...(tls ? { 'tls-creds': TLS_SERVER } : {}),
        });
        const exports: Record<string, string> = {};
        for (const [i, d] of vm.disks.entries()) {
          if (d.storage !== 'Local') continue;
          const exportId = `export-${diskNode(i)}`;
          await qmp.execute('block-export-add', { type: 'nbd', id: exportId, 'node-name': diskNode(i), name: d.name, writable: true });
          exports[d.name] = d.name;
          nbdExports.push(exportId);
        }
        endpoint.nbd = { host: address, port: nbdPort!, exports };
      }
      await qmp.execute('migrate-incoming', { uri: endpoint.migrationUri });
      await this.writeRecord(vm.id, { ...rec, incoming: { endpoint, blockMigration: opts.blockMigration, nbdExports } });
      log.info({ vm: vm.id, endpoint }, 'waiting for incoming migration');
      return endpoint;
    });
  }

  async completeIncoming(id: string): Promise<void> {
    return this.locked(id, async () => {
      const rec = await this.requireRecord(id);
      if ((await this.pid(id)) === undefined) throw permanent(`${id} has no QEMU process on ${this.host.nodeName}; the incoming migration failed`);
      const qmp = this.qmp(id);
      const status = await this.runStatus(id);
      if (status === 'running') return this.writeRecord(id, { spec: rec.spec, layout: rec.layout });
      const incoming = migrationState((await qmp.execute<QueryMigrate>('query-migrate')).status);
      if (status === 'inmigrate' || (incoming !== 'completed' && incoming !== 'postcopy')) {
        throw new NotArrivedYet(`the migration of ${id} has not completed on ${this.host.nodeName} yet`);
      }
      // Stopping the server ends its exports; the source has cancelled its mirrors by now.
      if (rec.incoming?.nbdExports.length) await qmp.execute('nbd-server-stop').catch(ignoreQmp);
      await qmp.execute('cont');
      await this.writeRecord(id, { spec: rec.spec, layout: rec.layout });
      log.info({ vm: id }, 'incoming VM runs');
    });
  }

  // ------------------------------------------------------------------ live migration: source

  async startMigration(id: string, to: IncomingEndpoint, tuning: MigrationTuning, opts: { blockMigration: boolean }): Promise<void> {
    return this.locked(id, async () => {
      const rec = await this.requireRecord(id);
      if (to.tls && !this.tlsDir) throw permanent(`the target of ${id} expects TLS but ${this.host.nodeName} has no certificates`);
      if ((await this.pid(id)) === undefined) throw permanent(`${id} does not run on ${this.host.nodeName}`);
      const qmp = this.qmp(id);
      const current = migrationState((await qmp.execute<QueryMigrate>('query-migrate')).status);
      if (rec.outgoing && sameEndpoint(rec.outgoing.endpoint, to) && current !== 'failed' && current !== 'cancelled') return;
      if (current === 'active' || current === 'setup' || current === 'postcopy') {
        throw permanent(`${id} is already migrating to another target`);
      }
      if ((await this.runStatus(id)) !== 'running') throw permanent(`${id} is not running on ${this.host.nodeName}`);
      const local = rec.spec.disks.map((d, i) => ({ d, i })).filter(({ d }) => d.storage === 'Local');
      if (local.length > 0 && !opts.blockMigration) throw permanent(`${id} has local disks; only block migration can move them live`);
      if (opts.blockMigration && local.length > 0 && !to.nbd) throw permanent(`the target of ${id} offers no NBD export for its local disks`);

      const armed: ArmedFeatures = {
        postCopy: to.postCopy === true && tuning.allowPostCopy !== false && !opts.blockMigration,
        autoConverge: tuning.autoConverge || tuning.allowAutoConverge !== false,
        multifdChannels: to.multifdChannels ?? 0,
      };
      await qmp.execute('migrate-set-capabilities', { capabilities: capabilityList(armed) });
      const tls = to.tls === true;
      const tlsHost = uriHost(hostOfUri(to.migrationUri)).replace(/^\[|\]$/g, '');
      if (tls) await this.addTlsCreds(qmp, 'client');
      await qmp.execute('migrate-set-parameters', {
        ...migrationParameters(tuning, armed),
        'tls-creds': tls ? TLS_CLIENT : '',
        'tls-hostname': tls ? tlsHost : '',
      });

      const out: Outgoing = {
        endpoint: to,
        blockMigration: opts.blockMigration,
        armed,
        tuning,
        mirrored: [],
        migrateIssued: false,
        postCopyStarted: false,
        disk: { totalBytes: 0, transferredBytes: 0 },
      };
      if (opts.blockMigration && to.nbd) {
        for (const { d, i } of local) {
          const exportName = to.nbd.exports[d.name];
          if (!exportName) throw permanent(`the target of ${id} exports no disk ${d.name}`);
          await qmp.execute('blockdev-del', { 'node-name': mirrorNode(i) }).catch(ignoreQmp);
          await qmp.execute('blockdev-add', {
            driver: 'nbd',
            'node-name': mirrorNode(i),
            server: { type: 'inet', host: to.nbd.host, port: String(to.nbd.port) },
            export: exportName,
            ...(tls ? { 'tls-creds': TLS_CLIENT, 'tls-hostname': to.nbd.host } : {}),
          });
          // The target disk overlays the same image, so only this VM's own clusters need copying;
          // write-blocking keeps the mirror in step once it is ready, so switch-over has little left.
          await qmp.execute('blockdev-mirror', {
            'job-id': mirrorNode(i),
            device: diskNode(i),
            target: mirrorNode(i),
            sync: 'top',
            'copy-mode': 'write-blocking',
            'auto-dismiss': true,
          });
          out.mirrored.push(i);
        }
      }
      await this.writeRecord(id, { ...rec, outgoing: out });
      log.info({ vm: id, to: to.migrationUri, blockMigration: opts.blockMigration, armed }, 'migration started');
      await this.advanceOutgoing(id);
    });
  }

  async tuneMigration(id: string, tuning: MigrationTuning): Promise<void> {
    return this.locked(id, async () => {
      const rec = await this.requireRecord(id);
      const out = rec.outgoing;
      if (!out) throw permanent(`${id} has no migration to tune`);
      const qmp = this.qmp(id);
      if (tuning.autoConverge && !out.armed.autoConverge) {
        throw permanent('auto-converge was not allowed when this migration started (QEMU fixes capabilities at start)');
      }
      await qmp.execute('migrate-set-parameters', migrationParameters(tuning, out.armed));
      let postCopyStarted = out.postCopyStarted;
      if (tuning.postCopy && !postCopyStarted) {
        if (!out.armed.postCopy) {
          throw permanent(
            out.blockMigration
              ? 'post-copy is not offered with block migration (the disk mirror must finish before the target runs)'
              : 'post-copy was not enabled on both ends when this migration started',
          );
        }
        if (out.migrateIssued) {
          await qmp.execute('migrate-start-postcopy');
          postCopyStarted = true;
        }
      }
      await this.writeRecord(id, { ...rec, outgoing: { ...out, tuning, postCopyStarted } });
      await this.advanceOutgoing(id);
    });
  }

  async migrationStatus(id: string): Promise<MigrationStatus> {
    return this.locked(id, async () => {
      await this.advanceOutgoing(id);
      const rec = await this.requireRecord(id);
      const qmp = this.qmp(id);
      const q = await qmp.execute<QueryMigrate>('query-migrate');
      const disk = rec.outgoing ? rec.outgoing.disk : { totalBytes: 0, transferredBytes: 0 };
      const status = toMigrationStatus(q, disk);
      // Until every mirror is ready, `migrate` has not been issued: QEMU says "none", vmove says setup.
      if (rec.outgoing && !rec.outgoing.migrateIssued && status.state === 'none') status.state = 'setup';
      // Completed only once the mirrors are cancelled: the target must not run before that.
      if (status.state === 'completed' && rec.outgoing && rec.outgoing.mirrored.length > 0) status.state = 'active';
      return status;
    });
  }

  async migrationMayHaveEnded(id: string, ms: number): Promise<void> {
    const ends = (d: Record<string, unknown>) => ['completed', 'failed', 'cancelled', 'postcopy-active'].includes(String(d.status));
    await this.qmp(id).waitForEvent('MIGRATION', ends, ms).catch(() => undefined);
  }

  /**
   * Move an outgoing migration along; level-triggered so it works after an agent restart:
   * mirrors ready → migrate; migration completed → cancel the mirrors (they finish copying).
   */
  private async advanceOutgoing(id: string): Promise<void> {
    const rec = await this.readRecord(id);
    const out = rec?.outgoing;
    if (!rec || !out) return;
    const qmp = this.qmp(id);
    const jobs = (await qmp.execute<BlockJob[]>('query-block-jobs')).filter((j) => j.type === 'mirror');
    const next: Outgoing = { ...out };
    if (jobs.length > 0) next.disk = diskProgress(jobs);
    const state = migrationState((await qmp.execute<QueryMigrate>('query-migrate')).status);

    if (!out.migrateIssued) {
      const failed = out.mirrored.filter((i) => !jobs.some((j) => j.device === mirrorNode(i)));
      if (failed.length > 0) throw transient(`disk mirror of ${id} ended before the migration started (target unreachable?)`);
      if (jobs.every((j) => j.ready)) {
        await qmp.execute('migrate', { uri: out.endpoint.migrationUri });
        next.migrateIssued = true;
        if (out.tuning.postCopy && out.armed.postCopy) {
          await qmp.execute('migrate-start-postcopy');
          next.postCopyStarted = true;
        }
        log.info({ vm: id }, out.mirrored.length > 0 ? 'disks mirrored; migrating memory' : 'migrating memory');
      }
    } else if (state === 'completed' && out.mirrored.length > 0) {
      for (const i of out.mirrored) {
        if (jobs.some((j) => j.device === mirrorNode(i))) await qmp.execute('block-job-cancel', { device: mirrorNode(i) }).catch(ignoreQmp);
      }
      if (!(await this.waitJobsGone(qmp, 30_000))) throw transient(`disk mirrors of ${id} did not finish after the migration`);
      for (const i of out.mirrored) await qmp.execute('blockdev-del', { 'node-name': mirrorNode(i) }).catch(ignoreQmp);
      next.disk = { totalBytes: next.disk.totalBytes, transferredBytes: next.disk.totalBytes };
      next.mirrored = [];
      log.info({ vm: id }, 'migration completed; disk mirrors finished');
    }
    if (JSON.stringify(next) !== JSON.stringify(out)) await this.writeRecord(id, { ...rec, outgoing: next });
  }

  async abortMigration(id: string): Promise<void> {
    return this.locked(id, async () => {
      const rec = await this.readRecord(id);
      if (!rec || (await this.pid(id)) === undefined) return;
      const qmp = this.qmp(id);
      const q = await qmp.execute<QueryMigrate>('query-migrate');
      const state = migrationState(q.status);
      if (state === 'postcopy') throw permanent(`${id} is in post-copy: the target already runs it and the migration cannot be cancelled`);
      if (state === 'active' || state === 'setup') {
        await qmp.execute('migrate_cancel');
        for (let i = 0; i < 200; i++) {
          const s = migrationState((await qmp.execute<QueryMigrate>('query-migrate')).status);
          if (s !== 'active' && s !== 'setup') break;
          await sleep(50);
        }
      }
      for (const i of rec.outgoing?.mirrored ?? []) {
        await qmp.execute('block-job-cancel', { device: mirrorNode(i), force: true }).catch(ignoreQmp);
      }
      if (rec.outgoing?.mirrored.length) await this.waitJobsGone(qmp, 10_000);
      for (const i of rec.outgoing?.mirrored ?? []) await qmp.execute('blockdev-del', { 'node-name': mirrorNode(i) }).catch(ignoreQmp);
      // A cancelled migration may leave the guest paused in its last phase; it keeps running here.
      if ((await this.runStatus(id)) !== 'running' && state !== 'completed') await qmp.execute('cont').catch(ignoreQmp);
      await this.writeRecord(id, { spec: rec.spec, layout: rec.layout });
      log.info({ vm: id }, 'migration aborted; VM keeps running here');
    });
  }

  async resumeSource(id: string): Promise<void> {
    return this.locked(id, async () => {
      const rec = await this.requireRecord(id);
      if ((await this.pid(id)) === undefined) throw permanent(`${id} has no QEMU process on ${this.host.nodeName} to resume`);
      const qmp = this.qmp(id);
      const q = await qmp.execute<QueryMigrate>('query-migrate');
      if (migrationState(q.status) === 'postcopy') throw permanent(`${id} switched to post-copy: its state lives on the target now`);
      if (rec.outgoing?.mirrored.length) {
        for (const i of rec.outgoing.mirrored) await qmp.execute('block-job-cancel', { device: mirrorNode(i), force: true }).catch(ignoreQmp);
        await this.waitJobsGone(qmp, 10_000);
        for (const i of rec.outgoing.mirrored) await qmp.execute('blockdev-del', { 'node-name': mirrorNode(i) }).catch(ignoreQmp);
      }
      // cont re-activates the disk images QEMU handed over at the end of the migration.
      if ((await this.runStatus(id)) !== 'running') await qmp.execute('cont');
      await this.writeRecord(id, { spec: rec.spec, layout: rec.layout });
    });
  }

  // ------------------------------------------------------------------ cold moves

  async readDisk(id: string, disk: string): Promise<DiskReader> {
    const rec = await this.requireRecord(id);
    const i = diskIndex(id, rec.spec.disks, disk);
    if ((await this.pid(id)) !== undefined) throw permanent(`${id} must be stopped before its disk ${disk} is copied`);
    return readVmDisk(this.host, id, disk, (await this.diskFiles(rec.spec))[i]!);
  }

  async writeDisk(vm: VmSpec, disk: string, data: Readable, sizeBytes: number): Promise<void> {
    return this.locked(vm.id, async () => {
      const i = diskIndex(vm.id, vm.disks, disk);
      if ((await this.pid(vm.id)) !== undefined) throw permanent(`${vm.id} runs here; its disk ${disk} cannot be replaced`);
      await writeDiskFile((await this.diskFiles(vm))[i]!, data, sizeBytes);
    });
  }

  // ------------------------------------------------------------------ hotplug

  async hotplug(id: string, want: { cpu: number; memoryBytes: number }): Promise<void> {
    return this.locked(id, async () => {
      let rec = await this.requireRecord(id);
      if ((await this.pid(id)) === undefined || (await this.runStatus(id)) !== 'running') {
        throw permanent(`${id} is not running on ${this.host.nodeName}; resize it while stopped instead`);
      }
      const qmp = this.qmp(id);
      const slots = await qmp.execute<HotpluggableCpuSlot[]>('query-hotpluggable-cpus');
      let steps: HotplugStep[];
      try {
        steps = planHotplug(rec.layout, want, slots.filter((s) => s['qom-path'] === undefined));
      } catch (err) {
        if (err instanceof HotplugImpossible) throw permanent(err.message);
        throw err;
      }
      for (const step of steps) {
        await this.hotplugStep(qmp, step);
        rec = { ...rec, layout: applyStep(rec.layout, step) };
        await this.writeRecord(id, rec);
      }
      rec = { ...rec, spec: { ...rec.spec, cpu: want.cpu, memoryBytes: want.memoryBytes } };
      await this.writeRecord(id, rec);
    });
  }

  private async hotplugStep(qmp: QmpClient, step: HotplugStep): Promise<void> {
    switch (step.kind) {
      case 'addCpu':
        await qmp.execute('device_add', {
          driver: step.driver,
          id: step.cpu.id,
          'socket-id': step.cpu.socketId,
          'core-id': step.cpu.coreId,
          'thread-id': step.cpu.threadId,
        });
        return;
      case 'addDimm':
        await qmp.execute('object-add', { 'qom-type': 'memory-backend-ram', id: `${step.dimm.id}-mem`, size: step.dimm.sizeBytes });
        await qmp.execute('device_add', { driver: 'pc-dimm', id: step.dimm.id, memdev: `${step.dimm.id}-mem` });
        return;
      case 'removeCpu':
      case 'removeDimm': {
        // The guest has to release the device (ACPI eject). QEMU 7.2 sends no DEVICE_DELETED for a
        // CPU (only for its lapic child), so watch the device leave /machine/peripheral instead.
        await qmp.execute('device_del', { id: step.id });
        const deadline = Date.now() + 20_000;
        for (;;) {
          const devices = await qmp.execute<{ name: string }[]>('qom-list', { path: '/machine/peripheral' });
          if (!devices.some((d) => d.name === step.id)) break;
          if (Date.now() > deadline) throw transient(`the guest did not release ${step.id} within 20 s`);
          await sleep(200);
        }
        if (step.kind === 'removeDimm') await qmp.execute('object-del', { id: `${step.id}-mem` });
      }
    }
  }

  async close(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  // ------------------------------------------------------------------ internals

  private bootLayoutOf(vm: VmSpec): MachineLayout {
    try {
      return bootLayout(vm.cpu, vm.memoryBytes, this.limits);
    } catch (err) {
      throw permanent(`${vm.id}: ${(err as Error).message}`);
    }
  }

  private async diskFiles(vm: VmSpec): Promise<DiskFile[]> {
    await this.noteImage(vm.image);
    return vmDiskFiles(this.host, vm, !!this.imageHasBase.get(vm.image));
  }

  /** Whether each image ships a base disk (looked up once per image; see launch/ensure). */
  private readonly imageHasBase = new Map<string, boolean>();

  private async launch(rec: VmRecord, incoming: boolean): Promise<void> {
    const vm = rec.spec;
    const boot = await directBoot(this.host, vm);
    const files = vmFiles(this.host, vm.id);
    const diskFiles = await this.diskFiles(vm);
    await requireDiskFiles(vm.id, diskFiles);
    const disks: LaunchDisk[] = diskFiles.map((d) => ({ name: path.basename(d.path), path: d.path, format: d.format }));
    const args = qemuArgs({
      id: vm.id,
      uid: vm.uid,
      accelerator: this.accelerator,
      layout: rec.layout,
      files,
      kernel: boot.kernel,
      initrd: boot.initrd,
      append: boot.cmdline,
      disks,
      incoming,
    });
    await mkdir(files.dir, { recursive: true });
    // One serial log per QEMU process: the heartbeat of this process, not of an earlier one.
    await rename(files.serialLog, `${files.serialLog}.1`).catch(() => undefined);
    await rm(files.qmpSocket, { force: true });
    await rm(files.pidFile, { force: true });
    this.dropClient(vm.id);
    const proc = spawnDetached(this.binary, args, files.qemuLog);
    log.info({ vm: vm.id, pid: proc.pid, incoming }, 'QEMU started');
    const exited = proc.exited.then((code) => {
      throw new Error(`exited with code ${code}`);
    });
    try {
      await Promise.race([this.qmp(vm.id).connect(), exited]);
    } catch (err) {
      const tail = (await readFile(files.qemuLog, 'utf8').catch(() => '')).split('\n').slice(-5).join('\n').trim();
      await terminate(proc.pid, 1000);
      throw permanent(`QEMU for ${vm.id} did not start (${(err as Error).message}): ${tail}`);
    }
    exited.catch(() => undefined);
  }

  private qmp(id: string): QmpClient {
    let c = this.clients.get(id);
    if (!c) {
      c = new QmpClient(vmFiles(this.host, id).qmpSocket);
      c.on('event', (ev) => this.onEvent(id, ev));
      this.clients.set(id, c);
    }
    return c;
  }

  private dropClient(id: string): void {
    this.clients.get(id)?.close();
    this.clients.delete(id);
  }

  /** Events only hurry things along; the same steps also happen on the next migrationStatus. */
  private onEvent(id: string, ev: QmpEvent): void {
    const hurry =
      (ev.event === 'BLOCK_JOB_READY') ||
      (ev.event === 'MIGRATION' && ev.data.status === 'completed');
    if (ev.event === 'MIGRATION') log.debug({ vm: id, status: ev.data.status }, 'migration event');
    if (hurry) {
      void this.locked(id, () => this.advanceOutgoing(id)).catch((err: Error) => log.warn({ vm: id, err: err.message }, 'advancing migration failed'));
    }
    // A target in post-copy must run now: its source has stopped for good. `cont` during an
    // incoming migration only marks the VM to start when the device state has arrived.
    if (ev.event === 'MIGRATION' && ev.data.status === 'postcopy-active') {
      void this.readRecord(id).then(async (rec) => {
        if (rec?.incoming) await this.qmp(id).execute('cont');
      }).catch((err: Error) => log.warn({ vm: id, err: err.message }, 'starting post-copy target failed'));
    }
  }

  private async pid(id: string): Promise<number | undefined> {
    const files = vmFiles(this.host, id);
    return findQemu(files.pidFile, files.qmpSocket);
  }

  private async runStatus(id: string): Promise<string> {
    return (await this.qmp(id).execute<{ status: string }>('query-status')).status;
  }

  /** End the VM's QEMU process at once (quit, then signals) and forget its runtime files. */
  private async kill(id: string): Promise<void> {
    const pid = await this.pid(id);
    if (pid !== undefined) {
      await this.qmp(id).execute('quit', undefined, { timeoutMs: 3000 }).catch(() => undefined);
      if (!(await waitGone(pid, 3000))) await terminate(pid);
    }
    await this.forget(id);
  }

  private async forget(id: string): Promise<void> {
    this.dropClient(id);
    const files = vmFiles(this.host, id);
    await rm(files.qmpSocket, { force: true });
    await rm(files.pidFile, { force: true });
    const rec = await this.readRecord(id);
    if (rec && (rec.incoming || rec.outgoing)) await this.writeRecord(id, { spec: rec.spec, layout: rec.layout });
  }

  private async waitJobsGone(qmp: QmpClient, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const jobs = (await qmp.execute<BlockJob[]>('query-block-jobs')).filter((j) => j.type === 'mirror');
      if (jobs.length === 0) return true;
      await sleep(50);
    }
    return false;
  }

  private async trySetCapability(qmp: QmpClient, capability: string): Promise<boolean> {
    try {
      await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability, state: true }] });
      return true;
    } catch (err) {
      if (!(err instanceof QmpCommandError)) throw err;
      log.info({ capability, reason: err.desc }, 'migration capability unavailable on this host');
      return false;
    }
  }

  private async addTlsCreds(qmp: QmpClient, endpoint: 'server' | 'client'): Promise<void> {
    const id = endpoint === 'server' ? TLS_SERVER : TLS_CLIENT;
    const objects = await qmp.execute<{ name: string }[]>('qom-list', { path: '/objects' });
    if (objects.some((o) => o.name === id)) return;
    await qmp.execute('object-add', { 'qom-type': 'tls-creds-x509', id, dir: this.tlsDir, endpoint, 'verify-peer': true });
  }

  /** Ports already promised to incoming VMs of this host (their QEMU may not listen yet). */
  private async portsInUse(): Promise<Set<number>> {
    const taken = new Set<number>();
    let ids: string[] = [];
    try {
      ids = await readdir(vmsRoot(this.host));
    } catch {
      return taken;
    }
    for (const id of ids) {
      const ep = (await this.readRecord(id))?.incoming?.endpoint;
      if (!ep) continue;
      const port = Number(ep.migrationUri.split(':').pop());
      if (Number.isInteger(port)) taken.add(port);
      if (ep.nbd) taken.add(ep.nbd.port);
    }
    return taken;
  }

  private async readRecord(id: string): Promise<VmRecord | undefined> {
    try {
      const rec = JSON.parse(await readFile(vmFiles(this.host, id).definition, 'utf8')) as VmRecord;
      await this.noteImage(rec.spec.image);
      return rec;
    } catch {
      return undefined;
    }
  }

  private async requireRecord(id: string): Promise<VmRecord> {
    const rec = await this.readRecord(id);
    if (!rec) throw permanent(`${id} is not defined on ${this.host.nodeName}`);
    return rec;
  }

  private async noteImage(image: string): Promise<void> {
    if (!this.imageHasBase.has(image)) this.imageHasBase.set(image, await exists(imageFiles(this.host, image).baseDisk));
  }

  private async writeRecord(id: string, rec: VmRecord): Promise<void> {
    await this.noteImage(rec.spec.image);
    const file = vmFiles(this.host, id).definition;
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    await writeFile(tmp, JSON.stringify(rec, null, 2));
    await rename(tmp, file);
  }

  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }
}

/** Commands that fail because there is nothing to undo are fine during cleanup. */
function ignoreQmp(err: unknown): void {
  if (!(err instanceof QmpCommandError)) throw err;
}

function hostOfUri(uri: string): string {
  const rest = uri.replace(/^tcp:/, '');
  return rest.slice(0, rest.lastIndexOf(':'));
}

function sameEndpoint(a: IncomingEndpoint, b: IncomingEndpoint): boolean {
  return a.migrationUri === b.migrationUri && a.nbd?.port === b.nbd?.port;
}
