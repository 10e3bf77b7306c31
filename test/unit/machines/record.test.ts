import { moveRecordOf, traitsOf } from '../../../src/machines';

test('moveRecordOf reads a persisted machine and refuses what is not one', () => {
  const machine = { type: 'Live', state: 'Migrating', context: { sourceNode: 'a' } };
  expect(moveRecordOf({ machine })).toBe(machine);
  expect(moveRecordOf(undefined)).toBeUndefined();
  expect(moveRecordOf({})).toBeUndefined();
  expect(moveRecordOf({ machine: { ...machine, type: 'Teleport' } })).toBeUndefined();
  expect(moveRecordOf({ machine: { ...machine, type: 'toString' } })).toBeUndefined();
  expect(moveRecordOf({ machine: { type: 'Cold', state: 'Pending' } })).toBeUndefined();
});

test('a move whose type is not chosen yet counts as a transfer to another host', () => {
  expect(traitsOf(undefined)).toEqual(traitsOf('Cold'));
  expect(traitsOf('ResizeInPlace')).toMatchObject({ sameHost: true, transfers: false, occupiesTarget: false });
  expect(traitsOf('Rebuild').startsFromFencedSource).toBe(true);
});
