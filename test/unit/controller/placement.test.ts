import { placeVm, type PlacementQuery } from '../../../src/controller/placement';
import { GiB, host, MiB } from './hostFacts';

const needs = { cpu: 1, memoryBytes: 256 * MiB, storage: ['SharedFile' as const] };
const q = (o: Partial<PlacementQuery> = {}): PlacementQuery => ({ needs, inboundLimit: 2, ...o });

describe('placeVm', () => {
  test('picks the host with the most free memory and explains every rejection', () => {
    const r = placeVm(
      [
        host('a'),
        host('b', { used: { cpu: 2, memoryBytes: 8 * GiB } }),
        host('c', { cordoned: true }),
        host('d', { alive: false }),
        host('e', { fenced: true }),
        host('f', { caps: { storage: ['Local'] } }),
        host('g', { agent: undefined }),
        host('h', { ready: false }),
      ],
      q({ exclude: ['a'] }),
    );
    expect(r.nodeName).toBe('b');
    const reasons = Object.fromEntries(r.rejected.map((x) => [x.nodeName, x.reason]));
    expect(reasons).toEqual({
      a: "is the VM's current host",
      c: 'is cordoned',
      d: "its agent's lease expired 60 s ago",
      e: 'is fenced (node.kubernetes.io/out-of-service taint)',
      f: 'lacks storage SharedFile',
      g: 'has no vmove agent',
      h: 'Node is not Ready',
    });
  });

  test('spreads: free memory after placing decides, then the name', () => {
    expect(placeVm([host('b'), host('a')], q()).nodeName).toBe('a');
    expect(placeVm([host('a', { used: { cpu: 0, memoryBytes: GiB } }), host('b')], q()).nodeName).toBe('b');
  });

  test('a full host is rejected with the numbers; waitable only when moves in flight hold the room', () => {
    const full = host('a', { caps: { memoryBytes: GiB }, used: { cpu: 1, memoryBytes: GiB } });
    const r = placeVm([full], q());
    expect(r.nodeName).toBeUndefined();
    expect(r.waitable).toBe(false);
    expect(r.message).toBe('no host fits — a: not enough memory: needs 256Mi, 0 free of 1Gi');

    const held = host('a', { caps: { memoryBytes: GiB }, used: { cpu: 1, memoryBytes: GiB }, heldByMoves: { cpu: 1, memoryBytes: 512 * MiB } });
    const w = placeVm([held], q());
    expect(w.waitable).toBe(true);
    expect(w.rejected[0]!.reason).toContain('moves in flight hold the rest');
  });

  test('the inbound limit is a reason to wait, not to fail', () => {
    const r = placeVm([host('a', { inbound: 2 })], q());
    expect(r.rejected).toEqual([{ nodeName: 'a', reason: 'inbound move limit reached (2)' }]);
    expect(r.waitable).toBe(true);
  });

  test('explicit node and node selector', () => {
    expect(placeVm([host('a'), host('b')], q({ nodeName: 'b' })).nodeName).toBe('b');
    expect(placeVm([host('a')], q({ nodeName: 'zz' })).message).toBe('node zz does not exist');
    const sel = placeVm([host('a', { labels: { zone: 'x' } }), host('b', { labels: { zone: 'y' } })], q({ nodeSelector: { zone: 'y' } }));
    expect(sel.nodeName).toBe('b');
    expect(sel.rejected).toEqual([{ nodeName: 'a', reason: 'does not match nodeSelector zone=y' }]);
  });

  test('live moves need a live-capable target of the same driver', () => {
    const r = placeVm(
      [host('a', { caps: { liveMigration: false } }), host('b', { caps: { driver: 'qemu' } }), host('c', { caps: { blockMigration: false } })],
      q({ needs: { ...needs, liveMigration: true, blockMigration: true, driver: 'sim' } }),
    );
    expect(r.nodeName).toBeUndefined();
    expect(r.rejected.map((x) => x.reason)).toEqual(['cannot receive a live migration', 'runs driver qemu, the VM needs sim', 'cannot receive a block migration']);
  });
});
