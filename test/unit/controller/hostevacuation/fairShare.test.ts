// Fair sharing of the move limits between groups of moves (each evacuation, standalone requests).
import type { MoveRequest } from '../../../../src/api/types';
import type { MoveInFlight } from '../../../../src/controller/clusterView';
import { admitMove, competition, moveGroup, type Competition, type Contender } from '../../../../src/controller/limits';
import { host, ownedMove, vm } from './fixtures';

const limits = { parallelMoves: 4, outboundPerNode: 2, inboundPerNode: 2 };
const SLOT_WAIT = 'waiting for a free slot: 4 moves at a time in the cluster, shared between evacuations and other moves (highest priority first, then the group with the fewest in flight, then the oldest request)';
const flight = (uid: string, source: string): MoveInFlight => ({ uid, key: uid, vmKey: uid, source, target: 'z', moveType: 'Live', after: { cpu: 1, memoryBytes: 1 } });
const waiter = (uid: string, group: string, source: string, since = '2030-01-01T00:00:00Z'): Contender => ({ uid, key: `default/${uid}`, group, source, moveType: 'Live', since });
const race = (waiting: Contender[], groups: Record<string, string>): Competition => ({ waiting, groupOf: new Map([...waiting.map((w) => [w.uid, w.group] as const), ...Object.entries(groups)]) });

describe('admitMove shares the limits fairly', () => {
  test('the free slot goes to the group with fewer moves in flight, whoever asks first', () => {
    // Evacuation A holds 3 of 4 slots; B holds none. One slot is free.
    const inFlight = [flight('a1', 'n1'), flight('a2', 'n1'), flight('a3', 'n2')];
    const c = race([waiter('a4', 'evacuation/A', 'n2'), waiter('b1', 'evacuation/B', 'n3', '2030-01-01T00:05:00Z')], { a1: 'evacuation/A', a2: 'evacuation/A', a3: 'evacuation/A' });
    const forA = admitMove({ uid: 'a4', source: 'n2', moveType: 'Live' }, inFlight, limits, c);
    expect(forA.ok).toBe(false);
    // The same sentence as when every slot is taken: waiting requests are not rewritten as slots change hands.
    expect(!forA.ok && forA.reason).toBe(SLOT_WAIT);
    const full = admitMove({ uid: 'a4', source: 'n2', moveType: 'Live' }, [...inFlight, flight('b0', 'n4')], limits);
    expect(!full.ok && full.reason).toBe(SLOT_WAIT);
    expect(admitMove({ uid: 'b1', source: 'n3', moveType: 'Live' }, inFlight, limits, c)).toEqual({ ok: true });
  });

  test('two groups alternate as slots free up; within a group the oldest goes first', () => {
    const inFlight = [flight('a1', 'n1'), flight('b1', 'n2')];
    const c = race(
      [waiter('a2', 'evacuation/A', 'n1', '2030-01-01T00:00:01Z'), waiter('a3', 'evacuation/A', 'n3', '2030-01-01T00:00:02Z'), waiter('b2', 'evacuation/B', 'n2', '2030-01-01T00:00:03Z'), waiter('s1', 'standalone', 'n4', '2030-01-01T00:00:09Z')],
      { a1: 'evacuation/A', b1: 'evacuation/B' },
    );
    // Two free slots: standalone has none in flight and goes first; then A and B tie at one, and A's oldest wins.
    const admitted = ['a2', 'a3', 'b2', 's1'].filter((uid) => admitMove({ uid, source: c.waiting.find((w) => w.uid === uid)!.source, moveType: 'Live' }, inFlight, limits, c).ok);
    expect(admitted).toEqual(['a2', 's1']);
  });

  test('a waiting move whose source is at its outbound limit does not hold a slot others could use', () => {
    const inFlight = [flight('b1', 'n1'), flight('b2', 'n1')];
    const c = race([waiter('a1', 'evacuation/A', 'n1'), waiter('b3', 'evacuation/B', 'n2')], { b1: 'evacuation/B', b2: 'evacuation/B' });
    // A has fewer in flight, but its source n1 already sends two moves: B's move from n2 takes the slot.
    expect(admitMove({ uid: 'b3', source: 'n2', moveType: 'Live' }, inFlight, limits, c)).toEqual({ ok: true });
  });

  test('without competition, any free slot is taken (the hard limits still hold)', () => {
    expect(admitMove({ uid: 'x', source: 'n1', moveType: 'Live' }, [flight('1', 'n2')], limits)).toEqual({ ok: true });
    const full = [flight('1', 'n2'), flight('2', 'n3'), flight('3', 'n4'), flight('4', 'n5')];
    expect(admitMove({ uid: 'x', source: 'n1', moveType: 'Live' }, full, limits, race([], {})).ok).toBe(false);
  });
});

describe('competition', () => {
  const pending = (name: string, o: { vmName?: string; notBefore?: string; moveType?: string; source?: string; evacuation?: string; cancel?: boolean } = {}): MoveRequest => {
    const mr = ownedMove(o.vmName ?? name, 1, { phase: 'Pending', cancel: o.cancel, evacuation: o.evacuation, uid: name });
    mr.status!.machine = { type: o.moveType ?? 'Live', state: 'Pending', context: { sourceNode: o.source ?? 'a', moveType: o.moveType ?? 'Live', ...(o.notBefore ? { notBefore: o.notBefore } : {}) } };
    return mr;
  };
  const vms = new Map([
    ['default/free', vm('free')],
    ['default/held', vm('held', { moveRef: { name: 'other', uid: 'someone-else' } })],
    ['default/lost', vm('lost', { node: 'dead' })],
  ]);
  const hosts = new Map([
    ['a', host('a')],
    ['dead', host('dead', { alive: false })],
    ['fenced', host('fenced', { alive: false, fenced: true })],
  ]);
  const now = new Date('2030-01-01T00:10:00Z');

  test('only moves waiting for nothing but the limits compete, each in its group', () => {
    const moves = [
      pending('ready', { vmName: 'free' }),
      pending('standalone', { vmName: 'free', evacuation: '' }),
      pending('backoff', { vmName: 'free', notBefore: '2030-01-01T00:11:00Z' }),
      pending('busy-vm', { vmName: 'held' }),
      pending('source-down', { vmName: 'lost', source: 'dead' }),
      pending('rebuild-unfenced', { vmName: 'lost', source: 'dead', moveType: 'Rebuild' }),
      pending('rebuild-fenced', { vmName: 'lost', source: 'fenced', moveType: 'Rebuild' }),
      pending('cancelled', { vmName: 'free', cancel: true }),
    ];
    // ownedMove labels every move with its evacuation; a standalone one has none.
    delete moves[1]!.metadata.labels;
    const c = competition(moves, { vm: (k) => vms.get(k), host: (n) => hosts.get(n), now });
    expect(c.waiting.map((w) => [w.uid, w.group])).toEqual([
      ['ready', 'evacuation/drain-a'],
      ['standalone', 'standalone'],
      ['rebuild-fenced', 'evacuation/drain-a'],
    ]);
    expect(c.groupOf.get('busy-vm')).toBe('evacuation/drain-a');
    expect(moveGroup(undefined)).toBe('standalone');
  });
});
