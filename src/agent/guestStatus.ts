// What the VM's host can tell of its guest, as VirtualMachine.status says it: the GuestReady
// condition and status.guest (when the guest was first seen ready in this run, the last heartbeat
// seen and when). `Running` says the hypervisor runs the VM; GuestReady says whether the guest in
// it is up: True once it heartbeats, False while it boots (or stopped heartbeating, or the VM does
// not run), Unknown when the driver cannot see the guest at all — never True for want of knowing.
// A stall is judged here, from what this host saw (HeartbeatClock), not from what was written: so
// the heartbeat is written again only every GUEST_REFRESH_MS, as a record — the way a kubelet
// renews a Lease for liveness and writes its NodeStatus only on change or every 5 minutes. With
// a write per guest every 30 s, 10,000 VMs cost the API server 333 status writes a second. Pure.
import { GUEST_READY, type Condition, type GuestStatus, type VirtualMachine } from '../api/types';
import type { VmInfo } from '../protocol/vm';

export { GUEST_READY };
/** How often a heartbeat that goes on is written again (a record; readiness changes are written at once). */
export const GUEST_REFRESH_MS = 300_000;
/** A ready guest whose heartbeat stood still this long has stopped. */
export const GUEST_STALL_MS = 30_000;

/** A merge patch of status.guest: `null` removes a field. */
export type GuestPatch = { [K in keyof GuestStatus]?: GuestStatus[K] | null };

export interface GuestChanges {
  conditions?: Condition[];
  guest?: GuestPatch;
}

interface Verdict {
  status: Condition['status'];
  reason: string;
  message: string;
}

const stamp = (now: Date): string => now.toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * When this host first saw each guest's heartbeat at the value it has now. In memory: an agent
 * that restarts starts each clock again, so a stall is seen at most GUEST_STALL_MS later.
 */
export class HeartbeatClock {
  private readonly seen = new Map<string, { uid: string; heartbeat: number | undefined; since: Date }>();

  /** Since when the heartbeat of `info` stands at its value (now, if it just changed). */
  standingSince(info: VmInfo, now: Date): Date {
    const last = this.seen.get(info.id);
    if (last && last.uid === info.uid && last.heartbeat === info.heartbeat) return last.since;
    this.seen.set(info.id, { uid: info.uid, heartbeat: info.heartbeat, since: now });
    return now;
  }

  /** Forget the guests of VMs no longer here. */
  keepOnly(ids: Iterable<string>): void {
    const keep = new Set(ids);
    for (const id of this.seen.keys()) if (!keep.has(id)) this.seen.delete(id);
  }
}

function verdictOf(info: VmInfo, wasReady: boolean, standingSince: Date, now: Date): Verdict {
  if (info.state === 'Stopped') return { status: 'False', reason: 'VmStopped', message: 'the VM does not run' };
  if (info.state === 'Crashed') return { status: 'False', reason: 'VmCrashed', message: 'the VM crashed' };
  if (info.guestUnobservable) return { status: 'Unknown', reason: 'NotObservable', message: info.guestUnobservable };
  if (info.heartbeat === undefined) {
    return { status: 'False', reason: 'Booting', message: 'the hypervisor runs the VM, but its guest has sent no heartbeat yet' };
  }
  const still = wasReady && now.getTime() - standingSince.getTime() >= GUEST_STALL_MS;
  if (still) return { status: 'False', reason: 'HeartbeatStopped', message: `the guest's heartbeat stands at ${info.heartbeat} since ${stamp(standingSince)}` };
  return { status: 'True', reason: 'Heartbeat', message: 'the guest sends heartbeats' };
}

/**
 * What this host should change in the VM's guest status, from what its driver reports; undefined
 * when nothing. For VMs the reporter speaks for only (Running here, or Stopped/Crashed on its home
 * host); while a move holds the VM its verification judges the guest, so this waits for the end.
 * `standingSince`: when this host first saw the heartbeat at its current value (HeartbeatClock).
 */
export function guestChanges(vm: VirtualMachine, info: VmInfo, now: Date, standingSince: Date): GuestChanges | undefined {
  const st = vm.status ?? {};
  if (st.moveRef) return undefined;
  const seen = st.guest ?? {};
  const old = st.conditions?.find((c) => c.type === GUEST_READY);
  const v = verdictOf(info, old?.status === 'True', standingSince, now);
  const out: GuestChanges = {};
  if (!old || old.status !== v.status || old.reason !== v.reason || old.message !== v.message || old.observedGeneration !== vm.metadata.generation) {
    const next: Condition = {
      type: GUEST_READY,
      ...v,
      observedGeneration: vm.metadata.generation,
      lastTransitionTime: old && old.status === v.status ? old.lastTransitionTime : stamp(now),
    };
    out.conditions = [...(st.conditions ?? []).filter((c) => c.type !== GUEST_READY), next];
  }
  const guest: GuestPatch = {};
  if (v.status === 'True' && !seen.readySince) guest.readySince = stamp(now);
  // A guest that stopped, crashed or boots again is a new run: it is ready again when it heartbeats.
  if (v.status === 'False' && v.reason !== 'HeartbeatStopped' && seen.readySince) guest.readySince = null;
  const hb = info.heartbeat;
  if (hb !== undefined && hb !== seen.heartbeat) {
    const due = !seen.heartbeatTime || now.getTime() - Date.parse(seen.heartbeatTime) >= GUEST_REFRESH_MS || out.conditions !== undefined || seen.heartbeat === undefined;
    if (due) Object.assign(guest, { heartbeat: hb, heartbeatTime: stamp(now) });
  }
  if (Object.keys(guest).length) out.guest = guest;
  return out.conditions || out.guest ? out : undefined;
}
