import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MoveType } from '../../../src/api/types';
import { machineFor } from '../../../src/machines';
import { ALWAYS, machineGraph, machinesMarkdown } from '../../../src/machines/diagram';

const MACHINES: MoveType[] = ['Live', 'Cold', 'Rebuild', 'ResizeInPlace'];

test('docs/machines.md is what `make docs` draws from the machine definitions', () => {
  const committed = readFileSync(join(__dirname, '../../../docs/machines.md'), 'utf8');
  // On failure: run `make docs` and commit docs/machines.md with the machine change.
  expect(committed).toBe(machinesMarkdown());
});

describe.each(MACHINES)('the %s machine read from its definition', (type) => {
  const graph = machineGraph(machineFor(type));
  const names = graph.states.map((s) => s.name);

  test('starts in Pending and ends in exactly Succeeded, Failed or Cancelled, which lead nowhere', () => {
    expect(graph.initial).toBe('Pending');
    expect(graph.states.filter((s) => s.final).map((s) => s.name)).toEqual(['Succeeded', 'Failed', 'Cancelled']);
    expect(graph.edges.filter((e) => ['Succeeded', 'Failed', 'Cancelled'].includes(e.from))).toEqual([]);
  });

  test('the point of no return is SwitchingOver, and every state after it', () => {
    const committed = graph.states.filter((s) => s.committed).map((s) => s.name);
    expect(committed).toEqual(['SwitchingOver', 'Verifying', 'CleaningUp'].filter((n) => names.includes(n)));
  });

  test('every state is reachable, every arrow lands on a state, every guard has a name', () => {
    const reached = new Set([graph.initial]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const e of graph.edges) {
        if (reached.has(e.from) && e.to && !reached.has(e.to)) {
          reached.add(e.to);
          grew = true;
        }
      }
    }
    expect([...reached].sort()).toEqual([...names].sort());
    expect(graph.edges.filter((e) => e.to !== undefined && !names.includes(e.to))).toEqual([]);
    expect(graph.edges.filter((e) => e.guard === 'unnamed guard' || e.guard?.includes('?'))).toEqual([]);
  });

  test('every state that is not an end accepts CANCEL', () => {
    const open = graph.states.filter((s) => !s.final).map((s) => s.name);
    expect(open.filter((s) => !graph.edges.some((e) => e.from === s && e.event === 'CANCEL'))).toEqual([]);
  });

  test('eventless arrows only skip a state or end a rollback', () => {
    const always = graph.edges.filter((e) => e.event === ALWAYS);
    expect(always.every((e) => e.guard !== undefined)).toBe(true);
    expect(always.filter((e) => e.from === 'RollingBack').map((e) => e.to)).toEqual(['Pending', 'Cancelled', 'Failed']);
  });
});
