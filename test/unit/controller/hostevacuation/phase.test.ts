// The phase of a running evacuation and what a change of it says.
import { isFinal, phaseEvents, phaseOf, type PhaseInput } from '../../../../src/controller/hostevacuation/phase';
import type { Counts } from '../../../../src/controller/hostevacuation/tally';

const input = (o: Partial<Omit<PhaseInput, 'counts'>> & { counts?: Partial<Counts> } = {}): PhaseInput => ({
  node: 'a',
  host: { state: 'Alive' },
  gaveUp: new Map(),
  creating: 0,
  recovered: false,
  latest: [],
  cordoned: undefined,
  ...o,
  counts: { total: 2, succeeded: 0, failed: 0, inProgress: 0, pending: 2, ...o.counts },
});

describe('phaseOf', () => {
  test('done: Succeeded, or Failed naming the VMs given up on', () => {
    expect(phaseOf(input({ counts: { succeeded: 2, pending: 0 } })).phase).toBe('Succeeded');
    expect(phaseOf(input({ counts: { succeeded: 1, failed: 1, pending: 0 }, gaveUp: new Map([['default/v1', 'no room']]) }))).toEqual({
      phase: 'Failed',
      message: '1 of 2 VMs could not be moved off a — default/v1: no room',
    });
  });
  test('a dead host not fenced waits for the fence; an unreachable one with nothing moving is Pending', () => {
    expect(phaseOf(input({ host: { state: 'Dead', fenced: false, why: 'a is dead' } })).phase).toBe('WaitingForFence');
    expect(phaseOf(input({ host: { state: 'Unreachable', why: 'a is silent' } }))).toEqual({ phase: 'Pending', message: 'waiting: a is silent' });
    expect(phaseOf(input({ host: { state: 'Unreachable', why: 'a is silent' }, creating: 1 })).phase).toBe('Evacuating');
  });
  test('otherwise Evacuating, with what holds the moves', () => {
    expect(phaseOf(input({ counts: { succeeded: 1, pending: 1 }, hold: 'waiting for a' })).message).toBe('1 of 2 VMs moved off a; 0 moving, 1 waiting (waiting for a)');
  });
});

describe('phaseEvents', () => {
  test('none while the phase holds', () => {
    expect(phaseEvents('Evacuating', 'Evacuating', 'm', 'a')).toEqual([]);
  });
  test('leaving WaitingForFence says the host is fenced; the end says how it ended', () => {
    expect(phaseEvents('WaitingForFence', 'Evacuating', 'm', 'a').map((e) => e.reason)).toEqual(['Fenced']);
    expect(phaseEvents('Evacuating', 'Succeeded', 'm', 'a').map((e) => e.reason)).toEqual(['Succeeded']);
    expect(phaseEvents('WaitingForFence', 'Failed', 'm', 'a').map((e) => e.reason)).toEqual(['Failed']);
  });
  test('the first look of an unreachable host is no news; becoming unreachable later is', () => {
    expect(phaseEvents(undefined, 'Pending', 'm', 'a')).toEqual([]);
    expect(phaseEvents('Evacuating', 'Pending', 'm', 'a').map((e) => e.reason)).toEqual(['HostUnreachable']);
  });
});

test('final phases', () => {
  expect(['Succeeded', 'Failed', 'Cancelled', 'Evacuating', undefined].map((p) => isFinal(p as never))).toEqual([true, true, true, false, false]);
});
