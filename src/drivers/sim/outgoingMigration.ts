// Source side of one simulated live migration: a TCP connection to the target's listener,
// the convergence model advanced by simulated time, and the guest paused for the final copy.
import { connect } from 'node:net';
import type { MigrationState, MigrationStatus, MigrationTuning } from '../../protocol/migration';
import { DriverError, type HostConfig } from '../driver';
import {
  MiB,
  advance,
  effectiveDirtyRate,
  initialModelState,
  memoryRemainingBytes,
  sourcePaused,
  type GuestModel,
  type ModelState,
  type ModelTuning,
} from './convergence';
import type { InjectedFailure } from './guest';
import { FrameChannel, parseTcpUri, type SourceFrame, type TargetFrame } from './migrationWire';
import type { SimDriverOptions } from './options';
import { readSimDiskBlock, simDiskPath } from './simDisk';
import type { SimVmRecord, SimVmStore } from './vmStore';

const TERMINAL: readonly MigrationState[] = ['completed', 'failed', 'cancelled'];

export const isTerminalMigration = (state: MigrationState): boolean => TERMINAL.includes(state);

export interface OutgoingMigrationDeps {
  host: HostConfig;
  options: SimDriverOptions;
  store: SimVmStore;
  /** Called once when the migration reaches a terminal state. */
  settled: (m: OutgoingMigration) => void;
}

export class OutgoingMigration {
  private state: MigrationState = 'setup';
  private model: ModelState;
  private lastAdvanceAt?: number;
  /** Clock time the stream started (simulated time 0 of the model). */
  private readyAt = 0;
  private channel?: FrameChannel<TargetFrame, SourceFrame>;
  private error?: string;
  private errorTransient?: boolean;
  private disksSent = false;
  private switching = false;
  private stepping = false;

  constructor(
    private readonly deps: OutgoingMigrationDeps,
    private readonly rec: SimVmRecord,
    readonly uri: string,
    private tuning: MigrationTuning,
    private readonly guest: GuestModel,
    private readonly blockMigration: boolean,
    private readonly injected: InjectedFailure | undefined,
  ) {
    const diskBytes = blockMigration
      ? rec.spec.disks.filter((d) => d.storage === 'Local').reduce((n, d) => n + d.sizeBytes, 0)
      : 0;
    this.model = initialModelState(guest, diskBytes);
  }

  get vmId(): string {
    return this.rec.spec.id;
  }

  get migrationState(): MigrationState {
    return this.state;
  }

  /** Connect to the target; progress then happens on `step()`. */
  begin(): void {
    let target: { host: string; port: number };
    try {
      target = parseTcpUri(this.uri);
    } catch (err) {
      this.fail((err as Error).message, false);
      return;
    }
    const socket = connect({ host: target.host, port: target.port });
    const channel = new FrameChannel<TargetFrame, SourceFrame>(socket);
    this.channel = channel;
    socket.once('connect', () => {
      channel.send({ type: 'hello', vmId: this.rec.spec.id, uid: this.rec.spec.uid, blockMigration: this.blockMigration });
    });
    channel.onFrame((frame) => this.onTargetFrame(frame));
    channel.onClose((err) => {
      if (isTerminalMigration(this.state)) return;
      const why = err ? `: ${err.message}` : '';
      this.fail(this.state === 'setup' ? `cannot reach migration target ${this.uri}${why}` : `migration stream to ${this.uri} broke${why}`, true);
    });
  }

  tune(tuning: MigrationTuning): void {
    this.advanceToNow();
    this.tuning = tuning;
  }

  status(): MigrationStatus {
    if (!isTerminalMigration(this.state)) this.advanceToNow();
    const m = this.model;
    const phaseState: MigrationState = this.state === 'active' && m.phase === 'postcopy' ? 'postcopy' : this.state;
    return {
      state: phaseState,
      memoryTotalBytes: this.guest.memoryBytes,
      memoryTransferredBytes: Math.round(m.memoryTransferredBytes),
      memoryRemainingBytes: Math.round(memoryRemainingBytes(m, this.guest)),
      diskTotalBytes: m.diskTotalBytes,
      diskTransferredBytes: Math.round(m.diskTransferredBytes),
      diskRemainingBytes: Math.round(m.diskTotalBytes - m.diskTransferredBytes),
      dirtyRateBytesPerSecond: Math.round(effectiveDirtyRate(this.guest, m)),
      iteration: m.iteration,
      ...(m.downtimeMs !== undefined ? { downtimeMs: Math.round(m.downtimeMs) } : {}),
      ...(m.totalTimeMs !== undefined ? { totalTimeMs: Math.round(m.totalTimeMs) } : {}),
      ...(this.error !== undefined ? { error: this.error, errorTransient: this.errorTransient ?? false } : {}),
    };
  }

  /** Cancel: the guest keeps (or resumes) running here. Not possible once in post-copy. */
  abort(): void {
    if (isTerminalMigration(this.state)) return;
    this.advanceToNow();
    if (this.model.phase === 'postcopy') {
      throw new DriverError('cannot cancel a migration in post-copy: the guest already runs on the target', false);
    }
    this.settle('cancelled', 'Running');
  }

  /** One step of a running migration; called on every tick. */
  async step(): Promise<void> {
    if (this.state !== 'active' || this.stepping) return;
    this.stepping = true;
    try {
      this.advanceToNow();
      const m = this.model;
      if (this.injected) {
        this.fail(`sim: injected ${this.injected.transient ? 'transient ' : ''}failure in migrate`, this.injected.transient);
        return;
      }
      this.channel?.send({
        type: 'progress',
        memoryTransferredBytes: Math.round(m.memoryTransferredBytes),
        diskTransferredBytes: Math.round(m.diskTransferredBytes),
        iteration: m.iteration,
      });
      if (this.blockMigration && !this.disksSent && m.phase !== 'disk') await this.sendDisks();
      if (m.phase === 'done' && !this.switching && this.state === 'active') {
        this.switching = true;
        this.channel?.send({
          type: 'switchover',
          heartbeat: this.rec.heartbeatBase,
          cpu: this.rec.cpu,
          memoryBytes: this.rec.memoryBytes,
        });
      }
    } catch (err) {
      this.fail(`sim migration step failed: ${(err as Error).message}`, true);
    } finally {
      this.stepping = false;
    }
  }

  /** The agent stops: drop the connection without touching the persisted record. */
  detach(): void {
    this.channel?.destroy();
  }

  private async sendDisks(): Promise<void> {
    for (const disk of this.rec.spec.disks.filter((d) => d.storage === 'Local')) {
      const block = await readSimDiskBlock(simDiskPath(this.deps.host, this.vmId, disk));
      this.channel?.send({ type: 'disk', name: disk.name, block: block.toString('base64') });
    }
    this.disksSent = true;
  }

  private onTargetFrame(frame: TargetFrame): void {
    if (isTerminalMigration(this.state)) return;
    switch (frame.type) {
      case 'ready':
        this.state = 'active';
        this.readyAt = this.deps.options.now();
        this.lastAdvanceAt = this.readyAt;
        void this.step();
        return;
      case 'refused':
        this.fail(`migration target refused the stream: ${frame.message}`, false);
        return;
      case 'done':
        this.settle('completed', 'Migrated');
        return;
    }
  }

  private advanceToNow(): void {
    if (this.state !== 'active' || this.lastAdvanceAt === undefined) return;
    const now = this.deps.options.now();
    const dtSim = (now - this.lastAdvanceAt) * this.deps.options.timeScale;
    this.lastAdvanceAt = now;
    const wasPaused = sourcePaused(this.model);
    this.model = advance(this.model, this.guest, this.modelTuning(), dtSim);
    if (!wasPaused && sourcePaused(this.model) && this.rec.state === 'Running') {
      // The guest stopped at the model's pause moment, not at this (later) look at the clock.
      const pausedAt = this.readyAt + (this.model.pausedAtMs ?? this.model.elapsedMs) / this.deps.options.timeScale;
      this.deps.store.freeze(this.rec, 'Paused', pausedAt);
      void this.deps.store.persist(this.vmId);
    }
  }

  private modelTuning(): ModelTuning {
    const link = this.deps.options.bandwidthMiBps * MiB;
    const cap = this.tuning.bandwidthMiBps > 0 ? this.tuning.bandwidthMiBps * MiB : Infinity;
    return {
      bandwidthBytesPerSecond: Math.min(link, cap),
      maxDowntimeMs: this.tuning.maxDowntimeMs,
      autoConverge: this.tuning.autoConverge,
      ...(this.tuning.autoConvergeStepPercent !== undefined ? { autoConvergeStepPercent: this.tuning.autoConvergeStepPercent } : {}),
      postCopy: this.tuning.postCopy,
    };
  }

  private fail(message: string, transient: boolean): void {
    if (isTerminalMigration(this.state)) return;
    this.error = message;
    this.errorTransient = transient;
    // A broken post-copy leaves the guest split between hosts: it stays paused here, as in QEMU.
    this.settle('failed', this.model.phase === 'postcopy' ? 'Paused' : 'Running');
  }

  private settle(state: 'completed' | 'failed' | 'cancelled', vmState: 'Migrated' | 'Running' | 'Paused'): void {
    this.state = state;
    const now = this.deps.options.now();
    if (vmState === 'Running') {
      if (this.rec.state === 'Paused') this.deps.store.resume(this.rec, now);
    } else if (this.rec.state === 'Running' || this.rec.state === 'Paused') {
      this.deps.store.freeze(this.rec, vmState, now);
    }
    if (state !== 'completed' && this.channel && !this.channel.isClosed) {
      this.channel.send({ type: 'cancel', reason: this.error ?? state });
    }
    this.channel?.close();
    this.rec.migration = { uri: this.uri, status: this.status() };
    void this.deps.store.persist(this.vmId);
    this.deps.settled(this);
  }
}
