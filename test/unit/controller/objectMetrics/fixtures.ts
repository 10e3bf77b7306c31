// MoveRequests as the controller writes them: a real machine (test/unit/machines/drive.ts) driven
// step by step, its status made by the controller's own moveStatus after every event — so the
// metrics are computed from objects shaped exactly as the informer delivers them.
import type { MoveProgress, MoveRequest, MoveRequestStatus } from '../../../../src/api/types';
import { moveStatus } from '../../../../src/controller/moverequest/status';
import { MoveDriver } from '../../machines/drive';
import { scenario } from '../../machines/scenarios';

type Spec = Parameters<typeof scenario>[0];

export class MoveRequestFixture {
  readonly d: MoveDriver;
  status: MoveRequestStatus | undefined;
  private rv = 1;
  /** Whole seconds, as the API server writes creationTimestamp. */
  private readonly created: string;

  constructor(
    readonly name: string,
    spec: Spec,
    readonly namespace = 'ns',
    readonly labels: Record<string, string> = {},
  ) {
    this.d = new MoveDriver(scenario(spec));
    this.created = new Date(this.d.now - 1_000).toISOString().replace(/\.\d+Z$/, 'Z');
    this.record();
  }

  get object(): MoveRequest {
    return {
      apiVersion: 'vmove.dev/v1alpha1',
      kind: 'MoveRequest',
      metadata: {
        name: this.name,
        namespace: this.namespace,
        uid: `uid-${this.namespace}-${this.name}`,
        resourceVersion: String(this.rv),
        creationTimestamp: this.created,
        labels: this.labels,
      },
      spec: { vmName: `vm-${this.name}` },
      ...(this.status ? { status: this.status } : {}),
    };
  }

  /** Write the status for the machine as it is now (what the reconciler does after each event). */
  private record(progress?: MoveProgress): this {
    const notes = this.d.notes.splice(0);
    this.status = moveStatus(this.status, this.d.move, { now: new Date(this.d.now).toISOString(), notes, ...(progress ? { progress } : {}) });
    this.rv++;
    return this;
  }

  /** One event the controller would feed next, with its status write; false once the move ended. */
  stepOnce(): boolean {
    const phase = this.d.phase;
    if (phase === 'Succeeded' || phase === 'Failed' || phase === 'Cancelled') return false;
    this.d.wait(1_000);
    if (phase === 'Pending') this.d.start();
    else if (phase === 'Scheduling') this.d.place();
    else if (this.d.step?.request.kind === 'migrate') this.d.succeed({ downtimeMs: 35 });
    else this.d.succeed();
    this.record();
    return true;
  }

  /** A progress sample of the step in flight, written to status as decide.ts reports it. */
  progress(p: { memoryProcessedBytes: number; memoryRemainingBytes: number; memoryTotalBytes: number; iteration: number; dirtyRateBytesPerSecond?: number }, afterMs = 2_000): this {
    this.d.wait(afterMs);
    this.d.progress({ processedBytes: p.memoryProcessedBytes, remainingBytes: p.memoryRemainingBytes, iteration: p.iteration });
    return this.record(p);
  }

  /** Steps until `phase` (or the end). */
  runTo(phase: string): this {
    while (this.d.phase !== phase && this.stepOnce());
    return this;
  }

  runToEnd(): this {
    while (this.stepOnce());
    return this;
  }

  fail(transient: boolean, message?: string): this {
    this.d.wait(1_000);
    this.d.fail(transient, message);
    return this.record();
  }

  /** The agent of the host in `role` stops answering. */
  lose(role: 'source' | 'target'): this {
    this.d.wait(1_000);
    this.d.lose(role);
    return this.record();
  }

  cancel(): this {
    this.d.wait(1_000);
    this.d.cancel();
    return this.record();
  }

  /** Time passes without progress, then a sample arrives (the timeouts are judged on it). */
  stallFor(ms: number): this {
    this.d.wait(ms);
    const w = this.d.ctx.watch!;
    this.d.progress({ processedBytes: w.processedBytes, remainingBytes: w.bestRemainingBytes, iteration: w.lastIteration });
    return this.record();
  }
}
