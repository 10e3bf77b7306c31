// withFinalizer routes an object to apply or cleanup by its deletion, its finalizer and whether its
// work is finished, and adds or removes the finalizer around them (kube-rs's finalizer shape).
import { withFinalizer, type Applied, type CleanedUp, type FinalizerWriter } from '../../../src/kube/finalizer';

interface Obj {
  metadata: { name: string; finalizers?: string[]; deletionTimestamp?: string; resourceVersion?: string };
  done?: boolean;
}

const F = 'vmove.dev/test';

function harness(o: { apply?: Applied<Obj>; cleanup?: CleanedUp<Obj> } = {}) {
  const calls: string[] = [];
  const writer: FinalizerWriter<Obj> = {
    addFinalizer: async (obj) => {
      if (obj.metadata.finalizers?.includes(F)) return obj;
      calls.push('add');
      return { ...obj, metadata: { ...obj.metadata, finalizers: [F], resourceVersion: 'added' } };
    },
    removeFinalizer: async (obj) => {
      calls.push(`remove@${obj.metadata.resourceVersion}`);
      return obj;
    },
  };
  const arms = {
    apply: async (obj: Obj) => {
      calls.push(`apply@${obj.metadata.resourceVersion}`);
      return o.apply ?? { requeueAfterMs: 5 };
    },
    cleanup: async (obj: Obj) => {
      calls.push(`cleanup@${obj.metadata.resourceVersion}`);
      return o.cleanup ?? { cleaned: { ...obj, metadata: { ...obj.metadata, resourceVersion: 'cleaned' } } };
    },
    finished: (obj: Obj) => !!obj.done,
  };
  return { calls, run: (obj: Obj) => withFinalizer(writer, F, obj, arms) };
}

const obj = (m: Partial<Obj['metadata']> = {}, done = false): Obj => ({ metadata: { name: 'x', resourceVersion: '1', ...m }, done });

test('a live object gets the finalizer, then apply runs on the written version', async () => {
  const h = harness();
  expect(await h.run(obj())).toEqual({ requeueAfterMs: 5 });
  expect(h.calls).toEqual(['add', 'apply@added']);
});

test('a live object that has it goes straight to apply', async () => {
  const h = harness();
  await h.run(obj({ finalizers: [F] }));
  expect(h.calls).toEqual(['apply@1']);
});

test('deleting with the finalizer: cleanup, then the finalizer goes from what cleanup wrote last', async () => {
  const h = harness();
  expect(await h.run(obj({ finalizers: [F], deletionTimestamp: 'now' }))).toEqual({});
  expect(h.calls).toEqual(['cleanup@1', 'remove@cleaned']);
});

test('a cleanup not done yet keeps the finalizer and says when to look again', async () => {
  const h = harness({ cleanup: { requeueAfterMs: 7 } });
  expect(await h.run(obj({ finalizers: [F], deletionTimestamp: 'now' }))).toEqual({ requeueAfterMs: 7 });
  expect(h.calls).toEqual(['cleanup@1']);
});

test('deleting without the finalizer, or finished without it: nothing to do', async () => {
  const h = harness();
  expect(await h.run(obj({ deletionTimestamp: 'now' }))).toEqual({});
  expect(await h.run(obj({}, true))).toEqual({});
  expect(h.calls).toEqual([]);
});

test('finished work is cleaned up like a deletion, without adding the finalizer', async () => {
  const h = harness();
  await h.run(obj({ finalizers: [F] }, true));
  expect(h.calls).toEqual(['cleanup@1', 'remove@cleaned']);
});

test('apply that finishes the work hands it to cleanup in the same call', async () => {
  const finished = obj({ finalizers: [F], resourceVersion: 'ended' }, true);
  const h = harness({ apply: { finished } });
  expect(await h.run(obj())).toEqual({});
  expect(h.calls).toEqual(['add', 'apply@added', 'cleanup@ended', 'remove@cleaned']);
});
