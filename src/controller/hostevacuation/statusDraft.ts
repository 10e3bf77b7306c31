// The next status of an evacuation, built from the previous one: every part of the decision sets
// its conditions through the one draft, so a condition keeps its transition time while it holds.
import type { Condition, HostEvacuationStatus } from '../../api/types';
import { findCondition, setCondition, standingConditions, type ConditionInput, type Standing } from '../conditions';

/** Builds the next status from the previous one; conditions keep their transition times. */
export class StatusDraft {
  conditions: Condition[] | undefined;
  constructor(
    readonly prev: HostEvacuationStatus,
    private readonly now: string,
    private readonly generation: number | undefined,
  ) {
    this.conditions = prev.conditions;
  }
  set(c: ConditionInput): void {
    this.conditions = setCondition(this.conditions, c, this.now, this.generation);
  }
  /** Reconciling and Stalled, as kstatus reads them (see Standing). */
  standing(phase: string, s: Standing): void {
    for (const c of standingConditions(phase, s)) this.set(c);
  }
  get(type: string): Condition | undefined {
    return findCondition(this.conditions, type);
  }
}
