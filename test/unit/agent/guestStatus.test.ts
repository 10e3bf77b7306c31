// GuestReady and status.guest, as a VM's host reports them from its driver's guest signal: a
// stall judged from what the host saw, the heartbeat written as a record only every 5 minutes.
import { GUEST_READY, GUEST_REFRESH_MS, GUEST_STALL_MS, guestChanges as judge, HeartbeatClock } from '../../../src/agent/guestStatus';
import type { Condition, VirtualMachine, VirtualMachineStatus } from '../../../src/api/types';
import type { VmInfo } from '../../../src/protocol/vm';

const T0 = new Date('2026-12-04T10:00:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms);

const vmObject = (status: VirtualMachineStatus = {}): VirtualMachine => ({
  apiVersion: 'vmove.dev/v1alpha1',
  kind: 'VirtualMachine',
  metadata: { name: 'db', namespace: 'default', uid: 'u1', generation: 1 },
  spec: { image: 'testguest', cpu: 1, memory: '256Mi' },
  status: { nodeName: 'node-a', phase: 'Running', ...status },
});
const info = (over: Partial<VmInfo> = {}): VmInfo => ({ id: 'default_db', uid: 'u1', state: 'Running', cpu: 1, memoryBytes: 256 << 20, ...over });
const ready = (c: Condition[] | undefined) => c?.find((x) => x.type === GUEST_READY);

// One host's clock per test, as the reporter keeps it across its passes.
let clock: HeartbeatClock;
beforeEach(() => (clock = new HeartbeatClock()));
const guestChanges = (vm: VirtualMachine, i: VmInfo, now: Date) => judge(vm, i, now, clock.standingSince(i, now));

/** The VM's status after the host wrote `changes` (a merge patch of conditions and guest). */
function applied(vm: VirtualMachine, changes: ReturnType<typeof guestChanges>): VirtualMachine {
  if (!changes) return vm;
  const guest = { ...vm.status?.guest } as Record<string, unknown>;
  for (const [k, v] of Object.entries(changes.guest ?? {})) {
    if (v === null) delete guest[k];
    else guest[k] = v;
  }
  return { ...vm, status: { ...vm.status, conditions: changes.conditions ?? vm.status?.conditions, guest } };
}

test('a guest that has not heartbeated yet is booting: GuestReady False, never True by default', () => {
  const c = guestChanges(vmObject(), info(), T0);
  expect(ready(c?.conditions)).toMatchObject({ status: 'False', reason: 'Booting', lastTransitionTime: '2026-12-04T10:00:00Z' });
  expect(c?.guest).toBeUndefined();
});

test('its first heartbeat makes it ready, with the time it became ready and the heartbeat seen', () => {
  const booting = applied(vmObject(), guestChanges(vmObject(), info(), T0));
  const c = guestChanges(booting, info({ heartbeat: 1 }), at(7_000));
  expect(ready(c?.conditions)).toMatchObject({ status: 'True', reason: 'Heartbeat', lastTransitionTime: '2026-12-04T10:00:07Z' });
  expect(c?.guest).toEqual({ readySince: '2026-12-04T10:00:07Z', heartbeat: 1, heartbeatTime: '2026-12-04T10:00:07Z' });
});

test('a heartbeat that goes on is written again only every refresh interval', () => {
  let vm = applied(vmObject(), guestChanges(vmObject(), info({ heartbeat: 1 }), T0));
  expect(guestChanges(vm, info({ heartbeat: 5 }), at(5_000))).toBeUndefined();
  expect(guestChanges(vm, info({ heartbeat: 240 }), at(GUEST_REFRESH_MS - 60_000))).toBeUndefined();
  const later = guestChanges(vm, info({ heartbeat: 300 }), at(GUEST_REFRESH_MS));
  expect(later).toEqual({ guest: { heartbeat: 300, heartbeatTime: '2026-12-04T10:05:00Z' } });
  vm = applied(vm, later);
  expect(vm.status?.guest?.readySince).toBe('2026-12-04T10:00:00Z');
});

test('a ready guest whose heartbeat stands still has stopped; a VM that stops starts a new run', () => {
  const vm = applied(vmObject(), guestChanges(vmObject(), info({ heartbeat: 9 }), T0));
  expect(guestChanges(vm, info({ heartbeat: 9 }), at(GUEST_STALL_MS - 1_000))).toBeUndefined();
  const stalled = guestChanges(vm, info({ heartbeat: 9 }), at(GUEST_STALL_MS));
  expect(ready(stalled?.conditions)).toMatchObject({ status: 'False', reason: 'HeartbeatStopped', message: "the guest's heartbeat stands at 9 since 2026-12-04T10:00:00Z" });
  expect(stalled?.guest).toBeUndefined();
  const stopped = guestChanges(vm, info({ state: 'Stopped' }), at(1_000));
  expect(ready(stopped?.conditions)).toMatchObject({ status: 'False', reason: 'VmStopped' });
  expect(stopped?.guest).toEqual({ readySince: null });
});

test('a driver that cannot see the guest says so: Unknown with its reason', () => {
  const c = guestChanges(vmObject(), info({ guestUnobservable: 'no serial log' }), T0);
  expect(ready(c?.conditions)).toMatchObject({ status: 'Unknown', reason: 'NotObservable', message: 'no serial log' });
});

test('while a move holds the VM its verification judges the guest: nothing is written', () => {
  expect(guestChanges(vmObject({ moveRef: { name: 'mv', uid: 'm' } }), info(), T0)).toBeUndefined();
});

test('other conditions are kept', () => {
  const other: Condition = { type: 'HostReachable', status: 'True', reason: 'AgentAlive', message: '', lastTransitionTime: '2026-12-04T09:00:00Z' };
  const c = guestChanges(vmObject({ conditions: [other] }), info({ heartbeat: 2 }), T0);
  expect(c?.conditions?.map((x) => x.type)).toEqual(['HostReachable', GUEST_READY]);
});

test('a stall is judged from what this host saw, not from when the heartbeat was last written', () => {
  // Written long ago (the record is refreshed every 5 minutes), but seen moving here: ready.
  let vm = applied(vmObject(), guestChanges(vmObject(), info({ heartbeat: 1 }), T0));
  for (let t = 5_000; t <= 120_000; t += 5_000) expect(guestChanges(vm, info({ heartbeat: 1 + t / 1000 }), at(t))).toBeUndefined();
  // It stops at 121: stalled 30 s after this host first saw it stand there — and the record is written with it.
  expect(guestChanges(vm, info({ heartbeat: 121 }), at(125_000))).toBeUndefined();
  const stalled = guestChanges(vm, info({ heartbeat: 121 }), at(125_000 + GUEST_STALL_MS));
  expect(ready(stalled?.conditions)).toMatchObject({ status: 'False', reason: 'HeartbeatStopped' });
  expect(stalled?.guest).toEqual({ heartbeat: 121, heartbeatTime: '2026-12-04T10:02:35Z' });
  vm = applied(vm, stalled);
  // It goes on again: ready at once.
  expect(ready(guestChanges(vm, info({ heartbeat: 122 }), at(160_000))?.conditions)).toMatchObject({ status: 'True', reason: 'Heartbeat' });
});

test("a host's clock starts again for a new copy of the VM (another uid), and forgets VMs no longer here", () => {
  const c = new HeartbeatClock();
  expect(c.standingSince(info({ heartbeat: 7 }), T0)).toEqual(T0);
  expect(c.standingSince(info({ heartbeat: 7 }), at(10_000))).toEqual(T0);
  expect(c.standingSince(info({ heartbeat: 7, uid: 'u2' }), at(20_000))).toEqual(at(20_000));
  c.keepOnly([]);
  expect(c.standingSince(info({ heartbeat: 7, uid: 'u2' }), at(30_000))).toEqual(at(30_000));
});
