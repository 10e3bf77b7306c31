// Reconciles one MoveRequest: observe (facts.ts) → decide (decide.ts, pure: the next event for
// the machine, or why it waits, and the intents the event needs) → act (intents.ts: hold a slot,
// take the VM, send the step's idempotent agent operation) → feed the event to the machine →
// record (status, written before the next act) → say when to look again.
// The controller may die at any instant: the machine's state lives only in `.status.machine`,
// and every agent operation is keyed by the request's UID and the machine's step key.
import type { MoveRequest, MoveRequestStatus } from '../../api/types';
import { withFinalizer, type Applied, type CleanedUp } from '../../kube/finalizer';
import { keyOf } from '../../kube/paths';
import type { ReconcileResult } from '../../kube/workQueue';
import { componentLogger } from '../../log';
import { advance, contextOf, isDone, moveRecordOf, phaseOf, restoreMove, type MoveState, type Note } from '../../machines';
import { isTerminal } from '../../machines/vocabulary';
import type { ControllerDeps } from '../deps';
import type { FollowedOperations } from '../followedOperations';
import { decideIntake } from './intake';
import { decideMove, POLL_MS } from './decide';
import { observeMove, vmKeyOf } from './facts';
import { CompetitionMemo } from './competitionMemo';
import { MoveIntents } from './intents';
import { MoveReservations } from './reservations';
import { endedWithoutMove, moveStatus, waitingWithoutMove } from './status';
import { UnsavedProgress } from './unsavedProgress';
import { releaseVm } from './vmLock';
import { sameJson } from '../../json';
import { resolveEffectivePolicy, type PolicyResolution } from '../policy/resolve';

export const MOVE_FINALIZER = 'vmove.dev/move-protection';
/** Transitions one reconcile may take before yielding to other requests. */
const MAX_TRANSITIONS = 25;
/** Progress-only status writes at most this often per request. */
const PROGRESS_WRITE_INTERVAL_MS = 2_000;

const sameExceptHistory = (a: MoveRequestStatus | undefined, b: MoveRequestStatus | undefined): boolean =>
  sameJson({ ...a, history: undefined }, { ...b, history: undefined });

/** The policy recorded at intake, if it was. */
const fixedPolicy = (s: MoveRequestStatus | undefined): PolicyResolution | undefined =>
  s?.effectivePolicy ? { policyRef: s.policyRef ?? '', effective: s.effectivePolicy } : undefined;

const ended = (mr: MoveRequest): boolean => !!mr.status?.phase && isTerminal(mr.status.phase);

const madeBefore = (a: MoveRequest, b: MoveRequest): boolean => {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  return ta < tb || (ta === tb && (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '', 'en', { numeric: true }) < 0);
};

export class MoveRequestReconciler {
  private readonly reservations: MoveReservations;
  private readonly intents: MoveIntents;
  private readonly lastWrite = new Map<string, number>();
  private readonly unsaved = new UnsavedProgress();
  private readonly competition = new CompetitionMemo();
  private readonly log = componentLogger('moverequest');

  constructor(
    private readonly d: ControllerDeps,
    operations: FollowedOperations,
  ) {
    this.reservations = new MoveReservations(d.view);
    this.intents = new MoveIntents(d, this.reservations, operations);
  }

  readonly reconcile = async (key: string): Promise<ReconcileResult> => {
    const mr = this.d.view.moves.get(key);
    // Another shard's (or, in a shard, a VM no shard of this cluster has yet): not this controller's to touch.
    if (!mr || !this.d.view.ownsMove(mr)) return {};
    return withFinalizer(this.d.writers.moves, MOVE_FINALIZER, mr, {
      // The finalizer guards the move, not the object: a request that ended lets its VM go and drops it.
      finished: ended,
      apply: (mr) => this.drive(mr),
      cleanup: (mr) => this.windDown(mr),
    });
  };

  /** A live request: choose its machine when its turn comes, then drive the machine. */
  private async drive(mr: MoveRequest): Promise<Applied<MoveRequest>> {
    const now = new Date();
    const record = moveRecordOf(mr.status);
    if (record) return this.run(mr, this.unsaved.newerThan(mr) ?? restoreMove(record));
    const vm = this.d.view.vms.get(vmKeyOf(mr));
    // The policy is read once, at the first look that finds the VM, and kept in status: a
    // MovePolicy edited later changes nothing for this request.
    const stored = mr.status;
    const fixed = fixedPolicy(stored);
    const resolution =
      fixed ??
      (vm
        ? resolveEffectivePolicy(mr, {
            policies: this.d.view.movePolicies.list(),
            vmLabels: vm.metadata.labels,
            namespaceLabels: this.d.view.namespaces.get(mr.metadata.namespace ?? '')?.metadata.labels,
            defaults: { mode: this.d.config.defaultMode, policy: this.d.config.policyDefaults },
          })
        : undefined);
    if (resolution && !fixed) mr = { ...mr, status: { ...mr.status, policyRef: resolution.policyRef, effectivePolicy: resolution.effective } };
    const intake = decideIntake(mr, {
      vm,
      earlierRequest: this.earlierRequestFor(mr),
      hosts: this.reservations.hosts(now),
      config: this.d.config,
      // No VM: intake ends the request before it reads a policy.
      effective: resolution?.effective ?? resolveEffectivePolicy(mr, { policies: [], defaults: { mode: this.d.config.defaultMode, policy: this.d.config.policyDefaults } }).effective,
    });
    if ('ended' in intake) {
      mr = await this.writeStatus(mr, endedWithoutMove(mr.status, intake.ended, intake.reason, intake.message, now.toISOString(), mr.metadata.generation));
      this.d.events.record(mr, intake.ended === 'Failed' ? 'Warning' : 'Normal', intake.ended, intake.message);
      return { finished: mr };
    }
    if ('waiting' in intake) {
      const status = waitingWithoutMove(mr.status, intake.waiting.reason, intake.waiting.message, now.toISOString(), mr.metadata.generation);
      if (!sameJson(status, stored)) {
        mr = await this.writeStatus(mr, status);
        this.d.events.record(mr, 'Normal', intake.waiting.reason, intake.waiting.message);
      }
      return { requeueAfterMs: 5_000 };
    }
    const m = intake.move;
    mr = await this.writeStatus(mr, moveStatus(mr.status, m, { now: now.toISOString(), generation: mr.metadata.generation, notes: [] }));
    const ctx = contextOf(m);
    this.d.events.record(mr, 'Normal', 'Accepted', `${ctx.moveType} move (${ctx.variant}): ${ctx.reason}`);
    return this.run(mr, m);
  }

  /**
   * A request being deleted, or one that ended: a move in flight is cancelled (its machine sees
   * the deletion) and rolls back first; then the VM is let go.
   */
  private async windDown(mr: MoveRequest): Promise<CleanedUp<MoveRequest>> {
    if (!ended(mr)) {
      const record = moveRecordOf(mr.status);
      if (!record) {
        mr = await this.writeStatus(mr, endedWithoutMove(mr.status, 'Cancelled', 'Deleted', 'deleted before the move started; nothing was touched', new Date().toISOString(), mr.metadata.generation));
      } else {
        const r = await this.run(mr, this.unsaved.newerThan(mr) ?? restoreMove(record));
        if (!('finished' in r)) return r;
        mr = r.finished;
      }
    }
    await this.letGo(mr);
    return { cleaned: mr };
  }

  /** Feed the machine what happened until it waits, ends, or has taken its share of transitions. */
  private async run(mr: MoveRequest, m: MoveState): Promise<Applied<MoveRequest>> {
    const key = keyOf(mr);
    for (let i = 0; i < MAX_TRANSITIONS; i++) {
      const facts = observeMove(this.d.view, this.reservations, this.competition, this.d.config, mr, new Date());
      const decision = decideMove(mr, m, facts);
      const obs = await this.intents.carryOut(mr, m, decision);
      const at = facts.now;
      if (!obs.event) {
        if (obs.waiting || obs.placement) {
          const status = moveStatus(mr.status, m, { now: at.toISOString(), generation: mr.metadata.generation, notes: [], waiting: obs.waiting, placement: obs.placement });
          if (!sameExceptHistory(status, mr.status)) mr = await this.writeStatus(mr, status);
        }
        return { requeueAfterMs: obs.requeueAfterMs ?? POLL_MS };
      }
      const before = m;
      const { state, notes } = advance(m, obs.event);
      const samePhase = phaseOf(state) === phaseOf(before);
      if (samePhase && notes.length === 0 && sameJson(state.snapshot.context, before.snapshot.context)) {
        return { requeueAfterMs: obs.requeueAfterMs ?? POLL_MS };
      }
      m = state;
      const progressOnly = samePhase && notes.length === 0 && obs.event.type === 'PROGRESS';
      if (!progressOnly || Date.now() - (this.lastWrite.get(key) ?? 0) >= PROGRESS_WRITE_INTERVAL_MS) {
        mr = await this.writeStatus(mr, moveStatus(mr.status, m, { now: at.toISOString(), generation: mr.metadata.generation, notes, progress: obs.progress, placement: obs.placement }));
      } else {
        this.unsaved.keep(mr, m);
      }
      this.announce(mr, before, m, notes);
      if (isDone(m)) return { finished: mr };
      if (progressOnly) return { requeueAfterMs: obs.requeueAfterMs ?? POLL_MS };
    }
    return { requeueAfterMs: 0 };
  }

  /**
   * An unfinished request for the same VM made before this one: requests for one VM run in the
   * order they were made. Creation times have whole seconds only; within one second, names decide
   * in natural order (move-2 before move-10), as a batch applied in one go is usually named.
   */
  private earlierRequestFor(mr: MoveRequest): string | undefined {
    return this.d.view.moves
      .list()
      .filter((o) => o.metadata.namespace === mr.metadata.namespace && o.spec.vmName === mr.spec.vmName && o.metadata.uid !== mr.metadata.uid)
      .filter((o) => !(o.status?.phase && isTerminal(o.status.phase)))
      .filter((o) => madeBefore(o, mr))
      .map((o) => o.metadata.name)[0];
  }

  /** A whole-status update under the resourceVersion: fields the machine dropped disappear, and a stale decision fails. */
  private async writeStatus(mr: MoveRequest, status: MoveRequestStatus): Promise<MoveRequest> {
    const updated = await this.d.writers.moves.replaceStatus(mr, status);
    this.lastWrite.set(keyOf(mr), Date.now());
    this.unsaved.forget(mr);
    if (status.phase !== 'Pending') this.reservations.release(mr.metadata.uid ?? '');
    return updated;
  }

  private announce(mr: MoveRequest, before: MoveState, after: MoveState, notes: Note[]): void {
    const phase = phaseOf(after);
    const changed = phase !== phaseOf(before);
    for (const n of notes) this.d.events.record(mr, n.warning ? 'Warning' : 'Normal', phase, n.message);
    if (changed && notes.length === 0) {
      const where = phase === 'Succeeded' ? `: ${mr.spec.vmName} runs on ${contextOf(after).targetNode}` : '';
      this.d.events.record(mr, phase === 'Failed' ? 'Warning' : 'Normal', phase, `${phase}${where}`);
    }
    if (changed) this.log.info({ move: `${mr.metadata.namespace}/${mr.metadata.name}`, vm: mr.spec.vmName, from: phaseOf(before), to: phase, attempt: contextOf(after).attempt }, 'phase');
  }

  /** A finished request lets its VM go (and withFinalizer drops its finalizer next). */
  private async letGo(mr: MoveRequest): Promise<void> {
    this.reservations.release(mr.metadata.uid ?? '');
    this.unsaved.forget(mr);
    this.lastWrite.delete(keyOf(mr));
    await releaseVm(this.d.writers.vms, mr, this.d.view.vms.get(vmKeyOf(mr)));
  }
}
