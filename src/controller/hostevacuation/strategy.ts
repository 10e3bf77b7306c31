// What an evacuation does with each VM: its evacuation strategy — the VM's own
// spec.evacuationStrategy > the matching MovePolicy's (the same matching as the policy's other
// knobs, `matchingPolicy`) > LiveMigrateIfPossible — with the move timeout facts the plan checks
// local-disk copies against, and the mode a strategy moves the VM with. Pure.
import { DEFAULT_EVACUATION_STRATEGY, type EvacuationStrategy, type MoveMode, type MovePolicy, type StrategySource, type VirtualMachine } from '../../api/types';
import type { ResolvedPolicy } from '../../machines/vocabulary';
import { vmRunning } from '../chooseMove';
import { DEFAULT_POLICY } from '../config';
import { matchingPolicy } from '../policy/resolve';
import { vmKey } from './vms';

export interface VmStrategy {
  strategy: EvacuationStrategy;
  source: StrategySource;
  /** The MovePolicy it came from (source MovePolicy). */
  policy?: string;
  /** The policy's bandwidth cap for the VM's moves (0: none). */
  bandwidthMiBps: number;
  /** Seconds per GiB to move before a move step is aborted. */
  completionTimeoutPerGiB: number;
}

export interface StrategyFacts {
  policies: readonly MovePolicy[];
  /** Labels of each namespace (for MovePolicy namespaceSelectors). */
  namespaceLabels: (namespace: string) => Record<string, string> | undefined;
  /** The controller's --default-* policy. */
  defaults: Pick<ResolvedPolicy, 'bandwidthMiBps' | 'completionTimeoutPerGiB'>;
}

export const DEFAULT_STRATEGY: VmStrategy = {
  strategy: DEFAULT_EVACUATION_STRATEGY,
  source: 'Default',
  bandwidthMiBps: DEFAULT_POLICY.bandwidthMiBps,
  completionTimeoutPerGiB: DEFAULT_POLICY.completionTimeoutPerGiB,
};

export function strategyOf(vm: VirtualMachine, f: StrategyFacts): VmStrategy {
  // Evacuation moves carry no spec.policy: the engine resolves their timeout and bandwidth as the matching MovePolicy > defaults.
  const p = matchingPolicy(f.policies, vm.metadata.labels, f.namespaceLabels(vm.metadata.namespace ?? 'default'));
  const limits = {
    bandwidthMiBps: p?.spec.bandwidthMiBps ?? f.defaults.bandwidthMiBps,
    completionTimeoutPerGiB: p?.spec.completionTimeoutPerGiB ?? f.defaults.completionTimeoutPerGiB,
  };
  if (vm.spec.evacuationStrategy) return { strategy: vm.spec.evacuationStrategy, source: 'VirtualMachine', ...limits };
  if (p?.spec.evacuationStrategy) return { strategy: p.spec.evacuationStrategy, source: 'MovePolicy', policy: p.metadata.name ?? '', ...limits };
  return { strategy: DEFAULT_EVACUATION_STRATEGY, source: 'Default', ...limits };
}

/** Each VM's strategy, by namespace/name. */
export function strategies(vms: readonly VirtualMachine[], f: StrategyFacts): Map<string, VmStrategy> {
  return new Map(vms.map((vm) => [vmKey(vm), strategyOf(vm, f)]));
}

/** `evacuationStrategy Cold (from MovePolicy gold)`: how a row names the strategy it followed. */
export function strategyWords(s: VmStrategy): string {
  const from = s.source === 'VirtualMachine' ? 'the VM' : s.source === 'MovePolicy' ? `MovePolicy ${s.policy}` : 'the default';
  return `evacuationStrategy ${s.strategy} (from ${from})`;
}

/** Strategies that move the VM off its host. */
export const moves = (s: EvacuationStrategy): boolean => s === 'LiveMigrate' || s === 'LiveMigrateIfPossible' || s === 'Cold';

/**
 * The MoveRequest mode a moving strategy gives a VM, under the evacuation's mode (Rebuild when a
 * dead host is recovered: the only way then, whatever the strategy), or why the two disagree.
 * LiveMigrateIfPossible follows the evacuation; Cold is cold whatever the evacuation says;
 * LiveMigrate is live — but a stopped VM has no guest to keep running, so it moves cold.
 */
export function strategyMode(s: EvacuationStrategy, evacuationMode: MoveMode, vm: VirtualMachine): { mode: MoveMode } | { conflict: string } {
  if (evacuationMode === 'Rebuild') return { mode: 'Rebuild' };
  if (s === 'Cold') return { mode: 'Cold' };
  if (s === 'LiveMigrate') {
    if (!vmRunning(vm)) return { mode: 'Cold' };
    if (evacuationMode === 'Cold') return { conflict: 'evacuationStrategy LiveMigrate, but the evacuation moves cold (spec.mode Cold)' };
    return { mode: 'Live' };
  }
  return { mode: evacuationMode };
}
