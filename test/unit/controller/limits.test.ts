import { admitMove } from '../../../src/controller/limits';
import type { MoveType } from '../../../src/api/types';
import type { MoveInFlight } from '../../../src/controller/clusterView';

const limits = { parallelMoves: 3, outboundPerNode: 2, inboundPerNode: 2 };
const flight = (uid: string, source: string, target: string, moveType: MoveType = 'Live'): MoveInFlight => ({ uid, key: uid, vmKey: uid, source, target, moveType, after: { cpu: 1, memoryBytes: 1 } });

describe('admitMove', () => {
  test('cluster-wide limit', () => {
    const r = admitMove({ uid: 'x', source: 'd', moveType: 'Live' }, [flight('1', 'a', 'b'), flight('2', 'b', 'c'), flight('3', 'c', 'a')], limits);
    expect(r).toEqual({ ok: false, reason: 'waiting for a free slot: 3 moves at a time in the cluster, shared between evacuations and other moves (highest priority first, then the group with the fewest in flight, then the oldest request)' });
  });
  test('outbound per node', () => {
    const r = admitMove({ uid: 'x', source: 'a', moveType: 'Cold' }, [flight('1', 'a', 'b'), flight('2', 'a', 'c')], limits);
    expect(r).toEqual({ ok: false, reason: 'waiting for a free slot on a: 2 moves at a time may leave a node' });
    expect(admitMove({ uid: 'x', source: 'b', moveType: 'Cold' }, [flight('1', 'a', 'b'), flight('2', 'a', 'c')], limits)).toEqual({ ok: true });
  });
  test('a move does not count against itself; resizes in place do not count', () => {
    expect(admitMove({ uid: '1', source: 'a', moveType: 'Live' }, [flight('1', 'a', 'b'), flight('2', 'a', 'c')], limits)).toEqual({ ok: true });
    expect(admitMove({ uid: 'x', source: 'a', moveType: 'ResizeInPlace' }, [flight('1', 'a', 'b'), flight('2', 'a', 'c'), flight('3', 'b', 'c')], limits)).toEqual({ ok: true });
    expect(admitMove({ uid: 'x', source: 'a', moveType: 'Live' }, [flight('1', 'a', 'a', 'ResizeInPlace'), flight('2', 'a', 'a', 'ResizeInPlace'), flight('3', 'a', 'a', 'ResizeInPlace')], limits)).toEqual({ ok: true });
  });
  test('a move whose bytes are across (verifying, cleaning up) frees its stream for the next one, in the cluster and on its node', () => {
    const verifying = { ...flight('1', 'a', 'b'), bytesAcross: true };
    const full = [verifying, flight('2', 'a', 'c'), flight('3', 'c', 'b')];
    expect(admitMove({ uid: 'x', source: 'a', moveType: 'Live' }, full, limits)).toEqual({ ok: true });
    expect(admitMove({ uid: 'x', source: 'a', moveType: 'Live' }, [flight('1', 'a', 'b'), ...full.slice(1)], limits)).toMatchObject({ ok: false });
  });
});
