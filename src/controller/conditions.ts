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
