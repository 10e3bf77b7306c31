// Every machine × variant × (VM running / stopped), explored event by event: failures, lost
// agents, cancels, timeouts and stalls injected everywhere they can happen (within budgets),
// each path judged by where it leaves the VM. See explorer.ts for the rules checked on the way.
import type { MoveType } from '../../../src/api/types';
import { CAMPAIGNS, exactJson, explore, transitionTable, type Exploration, type Violation } from './explorer';
import { SCENARIOS, type Scenario } from './scenarios';

const MACHINES: MoveType[] = ['Live', 'Cold', 'Rebuild', 'ResizeInPlace'];

const explored = new Map<string, Exploration[]>();
/** Both campaigns of one scenario, explored once per test file. */
function explorations(s: Scenario): Exploration[] {
  let e = explored.get(s.name);
  if (!e) {
    e = Object.values(CAMPAIGNS).map((limits) => explore(s, limits));
    explored.set(s.name, e);
  }
  return e;
}

/**
 * Candidates no event can take, and why. Kept explicit (and checked to stay untaken) so that a
 * change making them reachable, or leaving others dead, shows here.
 */
const UNREACHABLE: Partial<Record<MoveType, string[]>> = {
  // One host plays both roles: a lost agent is always the host that runs the VM, so the
  // "source lost, skip its clean-up" candidate after the point of no return never applies.
  ResizeInPlace: ['SwitchingOver|AGENT_LOST|1', 'Verifying|AGENT_LOST|1'],
};

const readable = (v: Violation): string => `${v.rule}: ${v.detail}\n    ${v.path.join('\n    ')}`;

describe.each(MACHINES)('%s machine', (type) => {
  const scenarios = SCENARIOS.filter((s) => s.input.moveType === type);

  test.each(scenarios.map((s) => [s.name, s] as const))('%s: every path ends with the VM where the outcome says', (_, s) => {
    for (const e of explorations(s)) {
      expect(e.violations.map(readable)).toEqual([]);
      expect(e.cut).toBe(0);
      expect(e.endings.Succeeded).toBeGreaterThan(0);
      expect(e.endings.Failed).toBeGreaterThan(0);
      expect(e.endings.Cancelled).toBeGreaterThan(0);
    }
  });

  test('every state × event the definition accepts, and every guarded candidate, is taken', () => {
    const covered = new Set(scenarios.flatMap((s) => explorations(s).flatMap((e) => [...e.covered])));
    const table = transitionTable(type);
    expect(table.events.filter((k) => !covered.has(k))).toEqual([]);
    const unreachable = UNREACHABLE[type] ?? [];
    expect(table.transitions.filter((k) => !covered.has(k))).toEqual(unreachable);
    expect(unreachable.every((k) => table.transitions.includes(k))).toBe(true);
    if (process.env.VMOVE_MACHINE_REPORT) {
      const all = scenarios.flatMap((s) => explorations(s));
      const sum = (f: (e: Exploration) => number) => all.reduce((n, e) => n + f(e), 0);
      process.stdout.write(
        `${type}: ${scenarios.length} scenarios, ${sum((e) => e.paths)} paths (${sum((e) => e.excused)} with a lost agent or abandoned rollback step), ` +
          `${sum((e) => e.visited)} situations; taken: ${table.events.length}/${table.events.length} state × event pairs, ` +
          `${table.transitions.length - unreachable.length}/${table.transitions.length} candidates (the rest unreachable by design)\n`,
      );
    }
  });
});

test('the crash-safety check tells apart what a trip through JSON would change', () => {
  const trip = (x: unknown) => exactJson(JSON.parse(JSON.stringify(x)));
  expect(trip({ best: Number.POSITIVE_INFINITY })).not.toBe(exactJson({ best: Number.POSITIVE_INFINITY }));
  expect(trip({ at: new Date(0) })).not.toBe(exactJson({ at: new Date(0) }));
  expect(trip({ a: 1, gone: undefined })).toBe(exactJson({ a: 1, gone: undefined }));
});
