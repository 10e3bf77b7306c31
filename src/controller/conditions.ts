// metav1.Condition bookkeeping: a condition's lastTransitionTime changes only when its status does.
import type { Condition } from '../api/types';

export interface ConditionInput {
  type: string;
  status: Condition['status'];
  reason: string;
  message: string;
}

export function setCondition(list: Condition[] | undefined, c: ConditionInput, now: string, generation?: number): Condition[] {
  const current = list ?? [];
  const old = current.find((x) => x.type === c.type);
  const next: Condition = {
    ...c,
    observedGeneration: generation,
    lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : now,
  };
  if (old && old.status === next.status && old.reason === next.reason && old.message === next.message && old.observedGeneration === generation) return current;
  return [...current.filter((x) => x.type !== c.type), next];
}

export function removeCondition(list: Condition[] | undefined, type: string): Condition[] {
  return (list ?? []).filter((x) => x.type !== type);
}

export const findCondition = (list: Condition[] | undefined, type: string): Condition | undefined => list?.find((x) => x.type === type);

/**
 * Where an object stands, as kstatus (Flux, `kubectl wait`, cli-utils) reads it: `working` while the
 * controller is still getting somewhere (Reconciling=True), `stalled` once it cannot get anywhere by
 * itself — failed, cancelled, or held until a person acts (Stalled=True, with the reason) — and `done`
 * once it got where it was asked to. With Ready alone a tool cannot tell doomed from busy, so it waits
 * for ever on a failure; Stalled makes the wait end at once.
 */
export type Standing = { state: 'working'; reason: string; message: string } | { state: 'stalled'; reason: string; message: string } | { state: 'done'; reason: string };

/** The Reconciling and Stalled conditions of a standing; `phase` is what a Reconciling=False says it ended in. */
export function standingConditions(phase: string, s: Standing): ConditionInput[] {
  const nothingMore = { status: 'False' as const, reason: phase, message: `${phase}: nothing more to do` };
  return [
    s.state === 'working' ? { type: 'Reconciling', status: 'True', reason: s.reason, message: s.message } : { type: 'Reconciling', ...nothingMore },
    s.state === 'stalled' ? { type: 'Stalled', status: 'True', reason: s.reason, message: s.message } : { type: 'Stalled', status: 'False', reason: 'NotStalled', message: '' },
  ];
}
