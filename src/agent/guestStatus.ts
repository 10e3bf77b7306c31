// What the VM's host can tell of its guest, as VirtualMachine.status says it: the GuestReady
// condition and status.guest (when the guest was first seen ready in this run, the last heartbeat
// seen and when). `Running` says the hypervisor runs the VM; GuestReady says whether the guest in
// it is up: True once it heartbeats, False while it boots (or stopped heartbeating, or the VM does
// not run), Unknown when the driver cannot see the guest at all — never True for want of knowing.
// The heartbeat is written again at most every GUEST_REFRESH_MS, not at each of its ticks. Pure.
import { GUEST_READY, type Condition, type GuestStatus, type VirtualMachine } from '../api/types';
import type { VmInfo } from '../protocol/vm';

export { GUEST_READY };
/** How often a heartbeat that goes on is written again (API writes, not the guest's pace). */
export const GUEST_REFRESH_MS = 30_000;
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

function verdictOf(info: VmInfo, seen: GuestStatus, wasReady: boolean, now: Date): Verdict {
  if (info.state === 'Stopped') return { status: 'False', reason: 'VmStopped', message: 'the VM does not run' };
  if (info.state === 'Crashed') return { status: 'False', reason: 'VmCrashed', message: 'the VM crashed' };
  if (info.guestUnobservable) return { status: 'Unknown', reason: 'NotObservable', message: info.guestUnobservable };
  if (info.heartbeat === undefined) {
    return { status: 'False', reason: 'Booting', message: 'the hypervisor runs the VM, but its guest has sent no heartbeat yet' };
  }
  const still = wasReady && seen.heartbeat === info.heartbeat && seen.heartbeatTime !== undefined && now.getTime() - Date.parse(seen.heartbeatTime) >= GUEST_STALL_MS;
  if (still) return { status: 'False', reason: 'HeartbeatStopped', message: `the guest's heartbeat stands at ${info.heartbeat} since ${seen.heartbeatTime}` };
  return { status: 'True', reason: 'Heartbeat', message: 'the guest sends heartbeats' };
}

/**
 * What this host should change in the VM's guest status, from what its driver reports; undefined
 * when nothing. For VMs the reporter speaks for only (Running here, or Stopped/Crashed on its home
 * host); while a move holds the VM its verification judges the guest, so this waits for the end.
 */
export function guestChanges(vm: VirtualMachine, info: VmInfo, now: Date): GuestChanges | undefined {
  const st = vm.status ?? {};
  if (st.moveRef) return undefined;
  const seen = st.guest ?? {};
  const old = st.conditions?.find((c) => c.type === GUEST_READY);
  const v = verdictOf(info, seen, old?.status === 'True', now);
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
