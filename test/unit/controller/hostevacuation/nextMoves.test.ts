// The evacuation's moves on one look: which are overtaken, which are created, which VMs are given up.
import type { VirtualMachine } from '../../../../src/api/types';
import { cancelOvertaken, givenUp, movesToCreate } from '../../../../src/controller/hostevacuation/nextMoves';
import type { PlanStep } from '../../../../src/controller/hostevacuation/planner';
import type { VmRow } from '../../../../src/controller/hostevacuation/rows';
import type { EvacuationActions, EvacuationFacts, EventNote } from '../../../../src/controller/hostevacuation/types';
import { evacuation, host, ownedMove, vm } from './fixtures';

const toMove = (name: string, attempt = 1): VmRow => ({ key: `default/${name}`, vm: vm(name), standing: { kind: 'ToMove', attempt, avoid: [] } });
const step = (v: VirtualMachine, o: Partial<PlanStep> = {}): PlanStep => ({
  namespace: 'default',
  vmName: v.metadata.name!,
  order: 1,
  reason: 'fits',
  vm: v,
  waitable: false,
  impossible: false,
  ...o,
});
const placed = (v: VirtualMachine, target: string): PlanStep =>
  step(v, { targetNode: target, moveType: 'Live', variant: 'SharedStorage', spec: { vmName: v.metadata.name!, mode: 'Auto', target: { nodeName: target } } });

describe('movesToCreate', () => {
  test('placed steps in plan order, as many as there are slots, named by evacuation, VM and attempt', () => {
    const rows = [toMove('v1'), toMove('v2', 2), toMove('v3')];
    const steps = [placed(rows[0]!.vm!, 'b'), step(rows[1]!.vm!, { reason: 'no room' }), placed(rows[2]!.vm!, 'c')];
    expect([...movesToCreate('drain-a', 'a', rows, steps, 1).keys()]).toEqual(['default/v1']);
    const both = movesToCreate('drain-a', 'a', rows, steps, 5);
    expect([...both.values()].map((m) => [m.name, m.step.targetNode])).toEqual([
      ['drain-a-v1-1', 'b'],
      ['drain-a-v3-1', 'c'],
    ]);
    expect(movesToCreate('drain-a', 'a', rows, steps, 0).size).toBe(0);
  });
});

describe('givenUp', () => {
  const v = vm('v1');
  const rows = [toMove('v1')];
  test('a move that cannot be made at all is given up, busy or not', () => {
    expect(givenUp(rows, [step(v, { impossible: true, reason: 'cannot be moved: no' })], true)).toEqual(new Map([['default/v1', 'cannot be moved: no']]));
  });
  test('no room: waits while the evacuation is busy or moves in flight hold the room; else given up', () => {
    expect(givenUp(rows, [step(v, { reason: 'no room' })], true).size).toBe(0);
    expect(givenUp(rows, [step(v, { reason: 'no room', waitable: true })], false).size).toBe(0);
    expect(givenUp(rows, [step(v, { reason: 'no room' })], false)).toEqual(new Map([['default/v1', 'no room']]));
  });
  test('a VM whose moves already gave up stays given up', () => {
    expect(givenUp([{ key: 'default/v1', vm: v, standing: { kind: 'GaveUp', reason: 'permanent' } }], [], true)).toEqual(new Map([['default/v1', 'permanent']]));
  });
});

describe('cancelOvertaken', () => {
  const facts = (moves: EvacuationFacts['moves']): EvacuationFacts => ({
    evacuation: evacuation(),
    now: new Date('2030-01-01T00:10:00Z'),
    node: { exists: true, unschedulable: false },
    host: host('a'),
    hosts: [],
    vms: [],
    moves,
    cordonWantedByOthers: false,
    deadHostAfterSeconds: 40,
  });
  const run = (f: EvacuationFacts, dead: boolean) => {
    const actions: EvacuationActions = { create: [], cancel: [], delete: [], stop: [], release: false };
    const events: EventNote[] = [];
    cancelOvertaken(f, dead ? { state: 'Dead', fenced: true, why: 'dead' } : { state: 'Alive' }, actions, events);
    return { cancelled: actions.cancel.map((c) => c.name), reasons: events.map((e) => e.reason) };
  };
  test('on a dead host, moves not started that are no rebuild; started ones run on', () => {
    const moves = [ownedMove('v1', 1, { phase: 'Pending', target: 'b' }), ownedMove('v2', 1, { phase: 'Pending', target: 'b', mode: 'Rebuild' }), ownedMove('v3', 1, { phase: 'Migrating', target: 'b' })];
    expect(run(facts(moves), true)).toEqual({ cancelled: ['drain-a-v1-1'], reasons: ['MoveCancelled'] });
    expect(run(facts(moves), false)).toEqual({ cancelled: [], reasons: [] });
  });
  test('a move not started whose VM left the node already', () => {
    expect(run(facts([ownedMove('v1', 1, { phase: 'Pending', target: 'b', source: 'c' })]), false).cancelled).toEqual(['drain-a-v1-1']);
  });
});
