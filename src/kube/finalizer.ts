// "Add the finalizer, handle the deletion, remove the finalizer" as one call, in the shape of
// kube-rs (kube-runtime/src/finalizer.rs): a live object gets the finalizer before `apply` runs;
// one being deleted runs `cleanup`, and loses the finalizer once cleanup says nothing is left.
// A deleted object without the finalizer is not ours to clean up.
//
// One addition: an object whose work is `finished` (a MoveRequest that ended, a HostEvacuation
// that finished) is not given the finalizer again and is handled by `cleanup` like one being
// deleted; its cleanup decides when the finalizer goes (a move's at once, an evacuation's when it
// is deleted). `apply` answers `{ finished }` when the work ended just now, so cleanup follows in
// the same reconcile.
import type { KubeObject } from './informer';
import type { ReconcileResult } from './workQueue';

export interface FinalizerWriter<T> {
  addFinalizer(obj: T, finalizer: string): Promise<T>;
  removeFinalizer(obj: T, finalizer: string): Promise<T>;
}

/** What `apply` answers: when to look again, or the object (as last written) whose work just ended. */
export type Applied<T> = ReconcileResult | { finished: T };
/** What `cleanup` answers: the object (as last written) once nothing is left to undo, or when to look again. */
export type CleanedUp<T> = ReconcileResult | { cleaned: T };

export interface FinalizerArms<T> {
  apply(obj: T): Promise<Applied<T>>;
  cleanup(obj: T): Promise<CleanedUp<T>>;
  finished?(obj: T): boolean;
}

export async function withFinalizer<T extends KubeObject>(writer: FinalizerWriter<T>, finalizer: string, obj: T, arms: FinalizerArms<T>): Promise<ReconcileResult> {
  const cleanup = async (o: T): Promise<ReconcileResult> => {
    const r = await arms.cleanup(o);
    if (!('cleaned' in r)) return r;
    await writer.removeFinalizer(r.cleaned, finalizer);
    return {};
  };
  if (obj.metadata?.deletionTimestamp || arms.finished?.(obj)) {
    return obj.metadata?.finalizers?.includes(finalizer) ? cleanup(obj) : {};
  }
  const applied = await arms.apply(await writer.addFinalizer(obj, finalizer));
  return 'finished' in applied ? cleanup(applied.finished) : applied;
}
