// The sim driver: a deterministic model of a hypervisor host. VMs have memory, CPUs, disks
// (sparse placeholder files) and a guest heartbeat; live migration runs over a real TCP
// connection between two sim hosts with progress from a convergence model; disk copies run at
// a configured rate; failures are injected through VM annotations. To the agent it behaves
// like a real driver, including surviving an agent restart with its VMs still running.
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { OperationKind } from '../../protocol/operations';
import { componentLogger } from '../../log';
import type { HostCapabilities } from '../../protocol/host';
import type { IncomingEndpoint, MigrationStatus, MigrationTuning } from '../../protocol/migration';
import type { VmInfo, VmSpec } from '../../protocol/vm';
import { DriverError, NotArrivedYet, type DiskReader, type Driver, type HostConfig } from '../driver';
import { MiB } from './convergence';
import { bootSeconds, guestModel, injectedFailure } from './guest';
import { IncomingListener } from './incomingMigration';
import { isTerminalMigration, OutgoingMigration } from './outgoingMigration';
import { simOptions, type SimDriverOptions } from './options';
import {
  SIM_DISK_HEADER_BYTES,
  decodeHeader,
  freshHeader,
  readSimDiskBlock,
  readSimDiskHeader,
  removeSimDisks,
  simDiskDir,
  simDiskPath,
  updateSimDiskHeader,
  writeSimDisk,
} from './simDisk';
import { SimVmStore, type SimVmRecord } from './vmStore';
import { hostCapabilities } from '../common/hostCapabilities';
import { emptyMigrationStatus } from '../common/migrationStatus';

const log = componentLogger('sim-driver');

/** Chunks a paced disk stream is cut into (progress granularity of a sim disk copy). */
const DISK_STREAM_CHUNKS = 64;

const idle: MigrationStatus = emptyMigrationStatus('none');

/** Make `name` an image the sim driver accepts (it only checks that the image exists). */
export async function createSimImage(imagesDir: string, name: string): Promise<void> {
  await mkdir(join(imagesDir, name), { recursive: true });
}

export class SimDriver implements Driver {
  readonly kind = 'sim' as const;
  private readonly store: SimVmStore;
  private readonly outgoing = new Map<string, OutgoingMigration>();
  private readonly incoming = new Map<string, IncomingListener>();
  private ticker?: NodeJS.Timeout;
  private closed = false;

  private constructor(
    readonly host: HostConfig,
    readonly options: SimDriverOptions,
  ) {
    this.store = new SimVmStore(host.stateDir, options.timeScale);
  }

  /** Open the host, re-adopting the VMs an earlier agent left running. */
  static async open(host: HostConfig, options: Partial<SimDriverOptions> = {}): Promise<SimDriver> {
    const d = new SimDriver(host, simOptions(options));
    await Promise.all([host.stateDir, host.localDir, host.sharedDir].map((p) => mkdir(p, { recursive: true })));
    await d.readopt();
    return d;
  }

  capabilities(): HostCapabilities {
    // The simulated link's speed, so evacuation plans can check local-disk copies against move timeouts.
    const link = this.options.bandwidthMiBps;
    return { ...hostCapabilities(this.host, 'sim', 'sim'), ...(Number.isFinite(link) ? { linkMiBps: link } : {}) };
  }

  async list(): Promise<VmInfo[]> {
    const now = this.options.now();
    return this.store.all().map((r) => this.store.info(r, now));
  }

  async ensureDisks(vm: VmSpec, how: 'keep' | 'fresh'): Promise<void> {
    this.inject(vm.annotations, 'ensureVm');
    await this.requireImage(vm.image);
    for (const disk of vm.disks) {
      if (!this.host.storage.includes(disk.storage)) {
        throw new DriverError(`${this.host.nodeName} has no ${disk.storage} storage for disk ${disk.name}`, false);
      }
      const path = simDiskPath(this.host, vm.id, disk);
      const existing = await readSimDiskHeader(path);
      // A disk left by an earlier VM of the same name is not this VM's: start it afresh.
      const keep = existing && existing.vmUid === vm.uid && !(how === 'fresh' && disk.storage === 'Local');
      if (!keep) await writeSimDisk(path, freshHeader(vm, disk, 'image'));
    }
  }

  async define(vm: VmSpec): Promise<void> {
    this.inject(vm.annotations, 'ensureVm');
    await this.requireDisks(vm);
    const rec = this.store.get(vm.id);
    if (rec) {
      if (rec.spec.uid !== vm.uid && rec.state !== 'Stopped') {
        throw new DriverError(`${this.host.nodeName} runs another VM named ${vm.id} (uid ${rec.spec.uid})`, false);
      }
      // Like a persistent libvirt definition: new resources apply at the next boot.
      rec.spec = vm;
      if (rec.state === 'Stopped') {
        rec.cpu = vm.cpu;
        rec.memoryBytes = vm.memoryBytes;
      }
      await this.store.persist(vm.id);
      return;
    }
    await this.store.set({ spec: vm, state: 'Stopped', cpu: vm.cpu, memoryBytes: vm.memoryBytes, heartbeatBase: 0 });
  }

  async start(id: string): Promise<void> {
    const rec = this.require(id);
    this.inject(rec.spec.annotations, 'startVm');
    if (rec.state === 'Running') return;
    this.requireNoOutgoing(id);
    this.dropIncoming(id);
    await this.requireDisks(rec.spec);
    // The guest boots from its disks: every boot writes to them.
    for (const disk of rec.spec.disks) {
      await updateSimDiskHeader(simDiskPath(this.host, id, disk), (h) => ({ ...h, generation: h.generation + 1 }));
    }
    rec.incoming = undefined;
    rec.cpu = rec.spec.cpu;
    rec.memoryBytes = rec.spec.memoryBytes;
    rec.heartbeatBase = -bootSeconds(rec.spec.annotations);
    this.run(rec);
    await this.store.persist(id);
  }

  async stop(id: string): Promise<void> {
    const rec = this.require(id);
    this.inject(rec.spec.annotations, 'stopVm');
    this.outgoing.get(id)?.abort();
    this.dropIncoming(id);
    rec.incoming = undefined;
    if (rec.state === 'Stopped') return;
    this.store.freeze(rec, 'Stopped', this.options.now());
    rec.cpu = rec.spec.cpu;
    rec.memoryBytes = rec.spec.memoryBytes;
    await this.store.persist(id);
  }

  async undefine(id: string, opts: { deleteLocalDisks: boolean; deleteSharedDisks?: boolean }): Promise<void> {
    const rec = this.store.get(id);
    if (rec) {
      this.inject(rec.spec.annotations, 'deleteVm');
      this.outgoing.get(id)?.detach();
      this.outgoing.delete(id);
      this.dropIncoming(id);
      await this.store.delete(id);
    }
    if (opts.deleteLocalDisks) await removeSimDisks(simDiskDir(this.host, 'Local', id));
    if (opts.deleteSharedDisks) {
      await removeSimDisks(simDiskDir(this.host, 'SharedFile', id));
      await removeSimDisks(simDiskDir(this.host, 'SharedBlock', id));
    }
  }

  async prepareIncoming(vm: VmSpec, opts: { blockMigration: boolean }): Promise<IncomingEndpoint> {
    this.inject(vm.annotations, 'prepareIncoming');
    const rec = this.store.get(vm.id);
    if (rec?.state === 'Running') throw new DriverError(`VM ${vm.id} already runs on ${this.host.nodeName}`, false);
    const listening = this.incoming.get(vm.id);
    if (rec?.state === 'Incoming' && listening && rec.spec.uid === vm.uid && rec.incoming?.blockMigration === opts.blockMigration) {
      return this.endpoint(vm, listening.port, opts.blockMigration);
    }
    this.dropIncoming(vm.id);
    for (const disk of vm.disks) {
      const path = simDiskPath(this.host, vm.id, disk);
      const header = await readSimDiskHeader(path);
      if (disk.storage !== 'Local') {
        if (!header) throw new DriverError(`shared disk ${disk.name} of ${vm.id} is missing on ${this.host.nodeName}`, false);
      } else if (opts.blockMigration) {
        if (!header || header.vmUid !== vm.uid) await writeSimDisk(path, freshHeader(vm, disk, 'empty'));
      } else if (!header) {
        throw new DriverError(`local disk ${disk.name} of ${vm.id} is not on ${this.host.nodeName}: a live move needs block migration`, false);
      }
    }
    const listener = await IncomingListener.open(this.incomingDeps(), vm.id);
    this.incoming.set(vm.id, listener);
    await this.store.set({
      spec: vm,
      state: 'Incoming',
      cpu: vm.cpu,
      memoryBytes: vm.memoryBytes,
      heartbeatBase: 0,
      incoming: { port: listener.port, blockMigration: opts.blockMigration },
    });
    return this.endpoint(vm, listener.port, opts.blockMigration);
  }

  async startMigration(id: string, to: IncomingEndpoint, tuning: MigrationTuning, opts: { blockMigration: boolean }): Promise<void> {
    const rec = this.require(id);
    const active = this.outgoing.get(id);
    if (active) {
      if (active.uri === to.migrationUri) return;
      throw new DriverError(`VM ${id} is already migrating to ${active.uri} (busy)`, true);
    }
    if (rec.migration?.uri === to.migrationUri && rec.migration.status.state === 'completed' && rec.state === 'Migrated') return;
    if (rec.state !== 'Running') throw new DriverError(`VM ${id} is ${rec.state}, not Running: nothing to migrate`, false);
    const injected = injectedFailure(rec.spec.annotations, 'migrate', this.host.nodeName);
    const guest = guestModel(rec.spec.annotations, rec.memoryBytes, this.options.guest);
    const m = new OutgoingMigration(
      { host: this.host, options: this.options, store: this.store, settled: (done) => this.settled(done) },
      rec,
      to.migrationUri,
      tuning,
      guest,
      opts.blockMigration,
      injected,
    );
    this.outgoing.set(id, m);
    rec.migration = { uri: to.migrationUri, status: m.status() };
    await this.store.persist(id);
    m.begin();
    this.ensureTicking();
  }

  async tuneMigration(id: string, tuning: MigrationTuning): Promise<void> {
    this.require(id);
    this.outgoing.get(id)?.tune(tuning);
  }

  async migrationStatus(id: string): Promise<MigrationStatus> {
    const rec = this.require(id);
    const active = this.outgoing.get(id);
    if (active) return active.status();
    return rec.migration?.status ?? idle;
  }

  async abortMigration(id: string): Promise<void> {
    const rec = this.require(id);
    this.inject(rec.spec.annotations, 'abortMigration');
    this.outgoing.get(id)?.abort();
  }

  async completeIncoming(id: string): Promise<void> {
    const rec = this.require(id);
    this.inject(rec.spec.annotations, 'completeIncoming');
    switch (rec.state) {
      case 'Running':
        return;
      case 'Incoming':
        throw new NotArrivedYet(`the migration stream of ${id} has not completed yet on ${this.host.nodeName}`);
      case 'Paused':
        this.run(rec);
        await this.store.persist(id);
        return;
      default:
        throw new DriverError(`VM ${id} is ${rec.state} on ${this.host.nodeName}: no migrated state to run`, false);
    }
  }

  async resumeSource(id: string): Promise<void> {
    const rec = this.require(id);
    this.inject(rec.spec.annotations, 'resumeSource');
    if (rec.state === 'Running') return;
    if (rec.state !== 'Migrated' && rec.state !== 'Paused') {
      throw new DriverError(`VM ${id} is ${rec.state} on ${this.host.nodeName}: nothing to resume`, false);
    }
    this.requireNoOutgoing(id);
    this.run(rec);
    await this.store.persist(id);
  }

  async readDisk(id: string, disk: string): Promise<DiskReader> {
    const rec = this.require(id);
    this.inject(rec.spec.annotations, 'copyDisks');
    const spec = rec.spec.disks.find((d) => d.name === disk);
    if (!spec) throw new DriverError(`VM ${id} has no disk ${disk}`, false);
    const block = await readSimDiskBlock(simDiskPath(this.host, id, spec));
    return { sizeBytes: block.length, stream: this.pacedStream(block, spec.sizeBytes) };
  }

  async writeDisk(vm: VmSpec, disk: string, data: Readable, sizeBytes: number): Promise<void> {
    this.inject(vm.annotations, 'copyDisks');
    const spec = vm.disks.find((d) => d.name === disk);
    if (!spec) throw new DriverError(`VM ${vm.id} has no disk ${disk}`, false);
    if (sizeBytes !== SIM_DISK_HEADER_BYTES) throw new DriverError(`disk stream of ${sizeBytes} bytes is not a sim disk`, false);
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of data) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      received += buf.length;
      if (received > SIM_DISK_HEADER_BYTES) throw new DriverError('disk stream longer than announced', false);
      chunks.push(buf);
    }
    if (received !== sizeBytes) throw new DriverError(`disk stream ended after ${received} of ${sizeBytes} bytes`, true);
    const header = decodeHeader(Buffer.concat(chunks), `disk ${disk} of ${vm.id}`);
    if (header.vmUid !== vm.uid) throw new DriverError(`disk ${disk} belongs to VM uid ${header.vmUid}, not ${vm.uid}`, false);
    await writeSimDisk(simDiskPath(this.host, vm.id, spec), { ...header, origin: 'copy', sizeBytes: spec.sizeBytes });
  }

  async hotplug(id: string, want: { cpu: number; memoryBytes: number }): Promise<void> {
    const rec = this.require(id);
    this.inject(rec.spec.annotations, 'hotplug');
    if (rec.state !== 'Running') throw new DriverError(`VM ${id} is ${rec.state}: hotplug needs a running VM`, false);
    const maxCpu = this.options.maxCpu ?? this.host.capacity.cpu;
    const maxMemory = this.options.maxMemoryBytes ?? this.host.capacity.memoryBytes;
    if (want.cpu < 1 || want.cpu > maxCpu) throw new DriverError(`cannot hotplug to ${want.cpu} CPUs (1–${maxCpu} on ${this.host.nodeName})`, false);
    if (want.memoryBytes < MiB || want.memoryBytes > maxMemory) {
      throw new DriverError(`cannot hotplug to ${want.memoryBytes} bytes of memory (max ${maxMemory} on ${this.host.nodeName})`, false);
    }
    rec.cpu = want.cpu;
    rec.memoryBytes = want.memoryBytes;
    rec.spec = { ...rec.spec, cpu: want.cpu, memoryBytes: want.memoryBytes };
    await this.store.persist(id);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
    for (const m of this.outgoing.values()) m.detach();
    this.outgoing.clear();
    for (const l of this.incoming.values()) l.close();
    this.incoming.clear();
    await this.store.flush();
  }

  // ---------------------------------------------------------------- internals

  private async readopt(): Promise<void> {
    const now = this.options.now();
    for (const rec of await this.store.load()) {
      const status = rec.migration?.status;
      if (status && !isTerminalMigration(status.state)) {
        // The stream lived in the previous agent process; it is gone. The guest runs on here.
        rec.migration = {
          uri: rec.migration!.uri,
          status: { ...status, state: 'failed', error: 'migration stream interrupted: the agent restarted', errorTransient: true },
        };
        if (rec.state === 'Paused') this.store.resume(rec, now);
        await this.store.persist(rec.spec.id);
      }
      if (rec.state === 'Incoming' && rec.incoming) {
        try {
          this.incoming.set(rec.spec.id, await IncomingListener.open(this.incomingDeps(), rec.spec.id, rec.incoming.port));
        } catch (err) {
          log.warn({ err, vmId: rec.spec.id }, 'cannot listen again for an incoming migration; dropping it');
          await this.store.delete(rec.spec.id);
        }
      }
    }
  }

  private incomingDeps() {
    return {
      host: this.host,
      store: this.store,
      now: this.options.now,
      ended: (vmId: string) => {
        this.incoming.delete(vmId);
      },
    };
  }

  private endpoint(vm: VmSpec, port: number, blockMigration: boolean): IncomingEndpoint {
    const addr = this.host.migrationAddress;
    const host = addr.includes(':') ? `[${addr}]` : addr;
    const ep: IncomingEndpoint = { migrationUri: `tcp:${host}:${port}` };
    if (blockMigration) {
      const exports = Object.fromEntries(vm.disks.filter((d) => d.storage === 'Local').map((d) => [d.name, `${vm.id}/${d.name}`]));
      ep.nbd = { host: addr, port, exports };
    }
    return ep;
  }

  /** Boot or resume the guest here; an injected verify failure crashes or hangs it. */
  private run(rec: SimVmRecord): void {
    const now = this.options.now();
    const fault = injectedFailure(rec.spec.annotations, 'verify', this.host.nodeName);
    if (fault && !fault.transient) {
      this.store.freeze(rec, 'Crashed', now);
      return;
    }
    this.store.resume(rec, now, fault ? this.options.hangSeconds * 1000 : 0);
  }

  private settled(m: OutgoingMigration): void {
    if (this.outgoing.get(m.vmId) === m) this.outgoing.delete(m.vmId);
  }

  private ensureTicking(): void {
    if (this.ticker || this.closed) return;
    this.ticker = setInterval(() => {
      if (this.outgoing.size === 0) {
        clearInterval(this.ticker);
        this.ticker = undefined;
        return;
      }
      for (const m of this.outgoing.values()) void m.step();
    }, this.options.tickMs);
  }

  private pacedStream(block: Buffer, logicalBytes: number): Readable {
    const rate = this.options.diskMiBps * MiB;
    const realMs = rate === Infinity ? 0 : ((logicalBytes / rate) * 1000) / this.options.timeScale;
    if (realMs < 1) return Readable.from([block]);
    const chunk = Math.ceil(block.length / DISK_STREAM_CHUNKS);
    const startedAt = Date.now();
    async function* paced(): AsyncGenerator<Buffer> {
      for (let i = 0; i * chunk < block.length; i++) {
        const due = startedAt + ((i + 1) / DISK_STREAM_CHUNKS) * realMs;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        yield block.subarray(i * chunk, (i + 1) * chunk);
      }
    }
    return Readable.from(paced());
  }

  private require(id: string): SimVmRecord {
    const rec = this.store.get(id);
    if (!rec) throw new DriverError(`no VM ${id} on ${this.host.nodeName}`, false);
    return rec;
  }

  private requireNoOutgoing(id: string): void {
    if (this.outgoing.has(id)) throw new DriverError(`VM ${id} is migrating (busy)`, true);
  }

  private dropIncoming(id: string): void {
    this.incoming.get(id)?.close();
    this.incoming.delete(id);
  }

  private async requireImage(image: string): Promise<void> {
    // The name is safe as a path segment: the agent checks it (requestValidation.ts) before any driver sees it.
    const known = await stat(join(this.host.imagesDir, image)).then(() => true, () => false);
    if (!known) throw new DriverError(`unknown image "${image}" (not in ${this.host.imagesDir})`, false);
  }

  private async requireDisks(vm: VmSpec): Promise<void> {
    for (const disk of vm.disks) {
      if (!(await readSimDiskHeader(simDiskPath(this.host, vm.id, disk)))) {
        throw new DriverError(`disk ${disk.name} of ${vm.id} is missing on ${this.host.nodeName}`, false);
      }
    }
  }

  private inject(annotations: Record<string, string> | undefined, kind: OperationKind): void {
    const fault = injectedFailure(annotations, kind, this.host.nodeName);
    if (fault) throw new DriverError(`sim: injected ${fault.transient ? 'transient ' : ''}failure in ${kind} on ${this.host.nodeName}`, fault.transient);
  }
}
