// The moves the machine tests run: every machine × variant × (VM running / stopped where it
// applies), with the world each starts from.
import type { MoveType, MoveVariant } from '../../../src/api/types';
import type { MoveInput, ResolvedPolicy, Resources } from '../../../src/machines';
import { newWorld, type World } from '../../support/moveWorld';

export const SOURCE = 'node-a';
export const TARGET = 'node-b';
export const GiB = 1024 ** 3;

export const BEFORE: Resources = { cpu: 2, memoryBytes: 2 * GiB };
export const AFTER: Resources = { cpu: 4, memoryBytes: 4 * GiB };

/** maxAttempts 2 keeps the exploration finite; maxDowntimeMs 40 gives a two-rung ladder (20 ms, 40 ms). */
export const POLICY: ResolvedPolicy = {
  maxDowntimeMs: 40,
  bandwidthMiBps: 0,
  completionTimeoutPerGiB: 120,
  progressTimeoutSeconds: 60,
  allowAutoConverge: false,
  allowPostCopy: false,
  maxAttempts: 2,
};

export interface Scenario {
  name: string;
  input: MoveInput;
  /** Where the controller places the move. */
  targetNode: string;
  /** What START says about the source's agent. */
  sourceReachable: boolean;
  world: World;
}

interface ScenarioSpec {
  type: MoveType;
  variant: MoveVariant;
  vmRunning: boolean;
  sourceReachable?: boolean;
  policy?: Partial<ResolvedPolicy>;
}

const storageOf = (variant: MoveVariant): 'shared' | 'local' =>
  variant === 'SharedStorage' || variant === 'FromSharedDisk' ? 'shared' : 'local';

export function scenario(s: ScenarioSpec): Scenario {
  const sourceReachable = s.sourceReachable ?? true;
  const sameHost = s.type === 'ResizeInPlace';
  // A live move keeps the VM's shape; every other move also resizes it, so "which resources
  // does the VM end with" tells a completed move from a rolled-back one.
  const after = s.type === 'Live' ? BEFORE : AFTER;
  const targetNode = sameHost ? SOURCE : TARGET;
  const input: MoveInput = {
    moveType: s.type,
    variant: s.variant,
    reason: 'test',
    sourceNode: SOURCE,
    vmRunning: s.vmRunning,
    before: BEFORE,
    after,
    policy: { ...POLICY, ...s.policy },
    bytesToMove: 2 * GiB,
    sharedDisks: storageOf(s.variant) === 'shared',
  };
  const world = newWorld({
    source: SOURCE,
    target: targetNode,
    storage: storageOf(s.variant),
    vmRunning: s.vmRunning,
    resources: BEFORE,
    sourceFenced: !sourceReachable,
  });
  const name = `${s.type}/${s.variant} ${s.vmRunning ? 'running' : 'stopped'}${sourceReachable ? '' : ', source host dead and fenced'}`;
  return { name, input, targetNode, sourceReachable, world };
}

/** Every combination a controller can start. */
export const SCENARIOS: Scenario[] = [
  scenario({ type: 'Live', variant: 'SharedStorage', vmRunning: true }),
  scenario({ type: 'Live', variant: 'BlockMigration', vmRunning: true }),
  ...[true, false].flatMap((vmRunning) => [
    scenario({ type: 'Cold', variant: 'SharedStorage', vmRunning }),
    scenario({ type: 'Cold', variant: 'DiskCopy', vmRunning }),
  ]),
  ...[true, false].flatMap((vmRunning) =>
    [true, false].flatMap((sourceReachable) => [
      scenario({ type: 'Rebuild', variant: 'FromSharedDisk', vmRunning, sourceReachable }),
      scenario({ type: 'Rebuild', variant: 'FromImage', vmRunning, sourceReachable }),
    ]),
  ),
  scenario({ type: 'ResizeInPlace', variant: 'Hotplug', vmRunning: true }),
  scenario({ type: 'ResizeInPlace', variant: 'Restart', vmRunning: true }),
  scenario({ type: 'ResizeInPlace', variant: 'Restart', vmRunning: false }),
];
