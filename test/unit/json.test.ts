// Documents compared by meaning: what the API server hands back (keys sorted) against what the
// controller built (keys in its own order) must compare equal, or every reconcile writes again.
import { canonicalJson, sameJson } from '../../src/json';

test('the order of keys does not matter, at any depth', () => {
  const built = { phase: 'Pending', conditions: [{ type: 'Ready', status: 'False' }], machine: { value: 'Pending', context: { b: 1, a: 2 } } };
  const stored = { conditions: [{ status: 'False', type: 'Ready' }], machine: { context: { a: 2, b: 1 }, value: 'Pending' }, phase: 'Pending' };
  expect(sameJson(built, stored)).toBe(true);
  expect(JSON.stringify(built) === JSON.stringify(stored)).toBe(false);
});

test('undefined fields are absent fields; values and the order of array items still count', () => {
  expect(sameJson({ a: 1, b: undefined }, { a: 1 })).toBe(true);
  expect(sameJson({ a: 1 }, { a: 2 })).toBe(false);
  expect(sameJson({ list: [1, 2] }, { list: [2, 1] })).toBe(false);
  expect(sameJson(null, {})).toBe(false);
  expect(canonicalJson({ z: { y: 1, x: [{ b: 1, a: 0 }] } })).toBe('{"z":{"x":[{"a":0,"b":1}],"y":1}}');
});
