// Which copies of a VM a host removes on its own once the VM has gone on elsewhere, and when.
import { LeftoverCollector, leftoverReason } from '../../../src/agent/leftovers';
import type { VirtualMachine, VirtualMachineStatus } from '../../../src/api/types';
import type { VmInfo, VmState } from '../../../src/protocol/vm';

function vmObject(status: VirtualMachineStatus, uid = 'uid-1'): VirtualMachine {
  return {
    apiVersion: 'vmove.dev/v1alpha1',
    kind: 'VirtualMachine',
    metadata: { name: 'web', namespace: 'prod', uid },
    spec: { image: 'debian', cpu: 1, memory: '256Mi' },
    status,
  };
}

const copy = (state: VmState, uid = 'uid-1'): VmInfo => ({ id: 'prod_web', uid, state, cpu: 1, memoryBytes: 256 * 2 ** 20 });
const runsOnA = vmObject({ nodeName: 'node-a', scheduledNode: 'node-a', phase: 'Running' });

describe('leftoverReason', () => {
  test.each(['Stopped', 'Incoming', 'Crashed', 'Migrated'] as const)('a %s copy of a VM that runs on another host is a leftover', (state) => {
    expect(leftoverReason(copy(state), runsOnA, 'node-c')).toBe('the VM runs on node-a');
  });

  test.each(['Running', 'Paused'] as const)('a %s copy is never touched, whatever the status says', (state) => {
    expect(leftoverReason(copy(state), runsOnA, 'node-c')).toBeUndefined();
    expect(leftoverReason(copy(state), undefined, 'node-c')).toBeUndefined();
  });

  test('a copy on the VM’s own host is its copy', () => {
    expect(leftoverReason(copy('Stopped'), runsOnA, 'node-a')).toBeUndefined();
  });

  test('while a move holds the VM, every copy may be part of it', () => {
    const held = vmObject({ nodeName: 'node-a', phase: 'Moving', moveRef: { name: 'mv', uid: 'm1' } });
    expect(leftoverReason(copy('Incoming'), held, 'node-c')).toBeUndefined();
  });

  test('a VM placed here but not yet reported anywhere is being created here', () => {
    expect(leftoverReason(copy('Stopped'), vmObject({ scheduledNode: 'node-c', phase: 'Pending' }), 'node-c')).toBeUndefined();
    expect(leftoverReason(copy('Stopped'), vmObject({ nodeName: 'node-a', scheduledNode: 'node-c', phase: 'Running' }), 'node-c')).toBeUndefined();
  });

  test('when the VM’s home does not report it (Lost, Failed), this copy may be the last one', () => {
    for (const phase of ['Lost', 'Failed', 'Pending'] as const) {
      expect(leftoverReason(copy('Stopped'), vmObject({ nodeName: 'node-a', phase }), 'node-c')).toBeUndefined();
    }
  });

  test('a VM stopped on its home: the copy elsewhere is a leftover too', () => {
    expect(leftoverReason(copy('Stopped'), vmObject({ nodeName: 'node-a', phase: 'Stopped' }), 'node-c')).toBe('the VM is defined and stopped on node-a');
  });

  test('a copy whose VirtualMachine is gone, or was created again, belongs to nobody', () => {
    expect(leftoverReason(copy('Stopped'), undefined, 'node-c')).toBe('its VirtualMachine no longer exists');
    expect(leftoverReason(copy('Stopped', 'uid-old'), runsOnA, 'node-a')).toBe('its VirtualMachine was deleted and created again');
  });
});

describe('LeftoverCollector', () => {
  function collector(lastActivity: number | undefined = undefined) {
    let now = 1_000_000;
    const removed: string[] = [];
    const c = new LeftoverCollector({
      node: 'node-c',
      graceMs: 30_000,
      lastActivity: () => lastActivity,
      remove: async (info) => void removed.push(info.id),
      now: () => now,
    });
    return { c, removed, advance: (ms: number) => (now += ms), setActivity: (t: number) => (lastActivity = t), at: () => now };
  }

  test('removes a leftover only after it has looked like one for the whole grace period', async () => {
    const { c, removed, advance } = collector();
    await c.sweep([copy('Incoming')], () => runsOnA);
    advance(29_000);
    await c.sweep([copy('Incoming')], () => runsOnA);
    expect(removed).toEqual([]);
    advance(1_000);
    await c.sweep([copy('Incoming')], () => runsOnA);
    expect(removed).toEqual(['prod_web']);
  });

  test('a copy that stops looking like a leftover starts its grace over', async () => {
    const { c, removed, advance } = collector();
    await c.sweep([copy('Incoming')], () => runsOnA);
    advance(20_000);
    await c.sweep([copy('Incoming')], () => vmObject({ nodeName: 'node-a', phase: 'Moving', moveRef: { name: 'mv', uid: 'm2' } }));
    advance(20_000);
    await c.sweep([copy('Incoming')], () => runsOnA);
    advance(20_000);
    await c.sweep([copy('Incoming')], () => runsOnA);
    expect(removed).toEqual([]);
  });

  test('an operation on the VM here restarts the grace: a move may be starting', async () => {
    const { c, removed, advance, setActivity, at } = collector();
    await c.sweep([copy('Incoming')], () => runsOnA);
    advance(25_000);
    setActivity(at());
    advance(25_000);
    await c.sweep([copy('Incoming')], () => runsOnA);
    expect(removed).toEqual([]);
    advance(5_000);
    await c.sweep([copy('Incoming')], () => runsOnA);
    expect(removed).toHaveLength(1);
  });

  test('never while an operation on the VM runs', async () => {
    const { c, removed, advance } = collector(Infinity);
    await c.sweep([copy('Incoming')], () => runsOnA);
    advance(3_600_000);
    await c.sweep([copy('Incoming')], () => runsOnA);
    expect(removed).toEqual([]);
  });
});
