// Progress judged between two status writes is kept only while the object it came from is the
// one the controller sees: any write (its own, a user's cancel, another leader's) drops it.
import type { MoveRequest } from '../../../src/api/types';
import { startMove, type MoveState } from '../../../src/machines';
import { UnsavedProgress } from '../../../src/controller/moverequest/unsavedProgress';
import { scenario } from '../machines/scenarios';

const mr = (uid: string, resourceVersion: string): MoveRequest =>
  ({ apiVersion: 'vmove.dev/v1alpha1', kind: 'MoveRequest', metadata: { name: uid, namespace: 'default', uid, resourceVersion }, spec: { vmName: 'db' } }) as MoveRequest;

const move = (): MoveState => startMove(scenario({ type: 'Live', variant: 'SharedStorage', vmRunning: true }).input);

test('the kept state serves the same object, and no other', () => {
  const kept = new UnsavedProgress();
  const m = move();
  kept.keep(mr('a', '10'), m);
  expect(kept.newerThan(mr('a', '10'))).toBe(m);
  expect(kept.newerThan(mr('a', '11'))).toBeUndefined(); // written since: .status is the truth
  expect(kept.newerThan(mr('b', '10'))).toBeUndefined();
});

test('forgotten once written or finished', () => {
  const kept = new UnsavedProgress();
  kept.keep(mr('a', '10'), move());
  kept.forget(mr('a', '10'));
  expect(kept.newerThan(mr('a', '10'))).toBeUndefined();
});
