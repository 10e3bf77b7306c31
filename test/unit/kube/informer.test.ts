// What an informer keeps of each object: everything a reconciler reads, not the server-side apply
// field ownership (managedFields), whether the object came from a list, a watch event or our own write.
import type { KubeApi, WatchEvent } from '../../../src/kube/api';
import { Informer } from '../../../src/kube/informer';

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string; managedFields?: unknown[] };
  spec: { n: number };
}

const managedFields = [{ manager: 'vmove-controller', operation: 'Update', fieldsV1: { 'f:status': {} } }];
const obj = (name: string, rv: string, n = 0): Obj => ({ metadata: { name, namespace: 'default', resourceVersion: rv, managedFields: [...managedFields] }, spec: { n } });

/** A server that lists `listed`, then streams `events` on the watch and holds it open. */
function fakeApi(listed: Obj[], events: WatchEvent<Obj>[]): KubeApi {
  return {
    request: async () => ({ metadata: { resourceVersion: '10' }, items: listed }),
    watch: async (_path: string, _q: unknown, onEvent: (e: WatchEvent<Obj>) => void, signal: AbortSignal) => {
      for (const e of events) onEvent(e);
      await new Promise<void>((r) => signal.addEventListener('abort', () => r()));
    },
  } as unknown as KubeApi;
}

test('the cache keeps no managedFields from lists, watch events or write-throughs, and keeps the rest', async () => {
  const informer = new Informer<Obj>(fakeApi([obj('listed', '5', 1)], [{ type: 'ADDED', object: obj('watched', '11', 2) }]), '/apis/x/v1/objs');
  const seen: Obj[] = [];
  informer.on({ onChange: (o) => seen.push(o) });
  informer.start();
  await informer.hasSynced;
  await new Promise((r) => setImmediate(r));
  informer.writeThrough(obj('written', '12', 3));
  informer.stop();

  for (const name of ['listed', 'watched', 'written']) {
    const cached = informer.get(`default/${name}`);
    expect(cached?.metadata.managedFields).toBeUndefined();
    expect(cached?.metadata.name).toBe(name);
  }
  expect(informer.list().map((o) => o.spec.n).sort()).toEqual([1, 2, 3]);
  expect(seen.map((o) => o.metadata.managedFields)).toEqual([undefined, undefined]);
});
