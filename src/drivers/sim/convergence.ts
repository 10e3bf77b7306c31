// The sim driver's live-migration model: pure arithmetic over simulated time, no I/O.
//
// It follows QEMU's pre-copy algorithm closely enough that the controller's convergence
// ladder meets the same situations as with a real hypervisor:
//   - block migration first streams the local disks (disk bytes, then memory);
//   - pass 1 sends all of memory; every later pass sends what the guest dirtied during the
//     previous one (a dirty sync ends each pass and bumps `iteration`);
//   - when what is left fits into `bandwidth × maxDowntime`, the VM pauses and the rest is
//     sent (stop-and-copy); the downtime is the time that takes;
//   - auto-converge throttles the guest's dirty rate in steps (the tuning's step, 20 % unless it says, one a pass, ≤ 99 %);
//   - post-copy pauses the source at once and sends the rest in one pass (downtime ≈ 1 ms);
//   - a never-converge guest rewrites its whole working set during every pass, however short,
//     and ignores throttling: only post-copy (or an unbounded downtime) finishes it.
// An infinite bandwidth makes every transfer instant.

import { DEFAULT_AUTO_CONVERGE_STEP_PERCENT } from '../../protocol/migration';

export const MiB = 1024 * 1024;

export interface GuestModel {
  memoryBytes: number;
  /** Pages the guest keeps rewriting; a pass never has more than this to resend. */
  workingSetBytes: number;
  dirtyRateBytesPerSecond: number;
  neverConverge: boolean;
}

export interface ModelTuning {
  /** Effective link bandwidth for this migration (bytes/s; Infinity = instant). */
  bandwidthBytesPerSecond: number;
  maxDowntimeMs: number;
  autoConverge: boolean;
  /** Auto-converge's first throttle and each step after it (absent: DEFAULT_AUTO_CONVERGE_STEP_PERCENT). */
  autoConvergeStepPercent?: number;
  postCopy: boolean;
}

export type ModelPhase = 'disk' | 'precopy' | 'stopcopy' | 'postcopy' | 'done';

export interface ModelState {
  phase: ModelPhase;
  /** Simulated milliseconds since the migration started. */
  elapsedMs: number;
  diskTotalBytes: number;
  diskTransferredBytes: number;
  memoryTransferredBytes: number;
  /** Dirty-sync passes started (1 during the first memory pass). */
  iteration: number;
  /** Bytes left to send in the current pass. */
  passRemainingBytes: number;
  /** Bytes dirtied since the current pass started (the next pass's size). */
  dirtiedBytes: number;
  throttlePercent: number;
  /** Set once the guest is paused for the final transfer. */
  downtimeMs?: number;
  /** Simulated ms since the start at which the guest paused. */
  pausedAtMs?: number;
  /** Set when done. */
  totalTimeMs?: number;
}

export const THROTTLE_MAX_PERCENT = 99;
/** Dirty tracking works on pages: a dirty sync rounds down to whole pages. */
export const PAGE_BYTES = 4096;
/** Device state handed over when post-copy switches (QEMU measures about 1 ms). */
export const POSTCOPY_SWITCH_DOWNTIME_MS = 1;

export function initialModelState(guest: GuestModel, diskTotalBytes: number): ModelState {
  const withDisks = diskTotalBytes > 0;
  return {
    phase: withDisks ? 'disk' : 'precopy',
    elapsedMs: 0,
    diskTotalBytes,
    diskTransferredBytes: 0,
    memoryTransferredBytes: 0,
    iteration: withDisks ? 0 : 1,
    passRemainingBytes: withDisks ? 0 : guest.memoryBytes,
    dirtiedBytes: 0,
    throttlePercent: 0,
  };
}

/** The guest's dirty rate after throttling. */
export function effectiveDirtyRate(guest: GuestModel, state: Pick<ModelState, 'throttlePercent'>): number {
  if (guest.neverConverge) return guest.dirtyRateBytesPerSecond;
  return guest.dirtyRateBytesPerSecond * (1 - state.throttlePercent / 100);
}

/** Milliseconds to send `bytes` (0 on an infinite link). */
function transferMs(bytes: number, bandwidth: number): number {
  if (bytes <= 0 || bandwidth === Infinity) return 0;
  return (bytes / bandwidth) * 1000;
}

/** Bytes sent in `ms` (everything on an infinite link). */
function bytesIn(ms: number, bandwidth: number, cap: number): number {
  if (bandwidth === Infinity) return cap;
  return Math.min(cap, (bandwidth * ms) / 1000);
}

function dirtiedDuring(guest: GuestModel, state: ModelState, ms: number, already: number): number {
  const cap = Math.min(guest.workingSetBytes, guest.memoryBytes);
  if (guest.neverConverge) return cap;
  return Math.min(cap, already + (effectiveDirtyRate(guest, state) * ms) / 1000);
}

function nextPassBytes(dirtied: number, guest: GuestModel): number {
  return Math.floor(Math.min(dirtied, guest.memoryBytes) / PAGE_BYTES) * PAGE_BYTES;
}

function converges(bytes: number, tuning: ModelTuning): boolean {
  return transferMs(bytes, tuning.bandwidthBytesPerSecond) <= tuning.maxDowntimeMs;
}

function pauseForRest(state: ModelState, bytes: number, tuning: ModelTuning, phase: 'stopcopy' | 'postcopy'): ModelState {
  const downtimeMs = phase === 'postcopy'
    ? POSTCOPY_SWITCH_DOWNTIME_MS
    : transferMs(bytes, tuning.bandwidthBytesPerSecond);
  return { ...state, phase, passRemainingBytes: bytes, dirtiedBytes: 0, downtimeMs, pausedAtMs: state.elapsedMs };
}

/** End of a pre-copy pass: dirty sync, then stop-and-copy or another pass. */
function endPass(state: ModelState, guest: GuestModel, tuning: ModelTuning): ModelState {
  const next = nextPassBytes(state.dirtiedBytes, guest);
  if (converges(next, tuning)) return pauseForRest(state, next, tuning, 'stopcopy');
  const throttlePercent = tuning.autoConverge && !guest.neverConverge
    ? Math.min(THROTTLE_MAX_PERCENT, state.throttlePercent + (tuning.autoConvergeStepPercent ?? DEFAULT_AUTO_CONVERGE_STEP_PERCENT))
    : state.throttlePercent;
  return { ...state, iteration: state.iteration + 1, passRemainingBytes: next, dirtiedBytes: 0, throttlePercent };
}

/**
 * Passes repeat identically once the throttle can rise no further and every pass resends the
 * same amount: skip whole passes at once so a long step stays cheap.
 */
function skipSteadyPasses(state: ModelState, guest: GuestModel, tuning: ModelTuning, budgetMs: number): ModelState {
  const steadyThrottle = !tuning.autoConverge || guest.neverConverge || state.throttlePercent >= THROTTLE_MAX_PERCENT;
  if (!steadyThrottle || state.dirtiedBytes !== 0 || state.phase !== 'precopy') return state;
  const passMs = transferMs(state.passRemainingBytes, tuning.bandwidthBytesPerSecond);
  if (passMs <= 0) return state;
  const produced = nextPassBytes(dirtiedDuring(guest, state, passMs, 0), guest);
  if (produced !== state.passRemainingBytes) return state;
  const passes = Math.floor(budgetMs / passMs) - 1;
  if (passes < 2) return state;
  return {
    ...state,
    elapsedMs: state.elapsedMs + passes * passMs,
    memoryTransferredBytes: state.memoryTransferredBytes + passes * produced,
    iteration: state.iteration + passes,
  };
}

/** Advance the model by `dtMs` of simulated time under `tuning`. */
export function advance(state: ModelState, guest: GuestModel, tuning: ModelTuning, dtMs: number): ModelState {
  let s = state;
  let budget = Math.max(0, dtMs);
  const bw = tuning.bandwidthBytesPerSecond;
  // Each round either finishes a phase or a pass, or spends the whole budget.
  for (let guard = 0; guard < 100_000; guard++) {
    if (s.phase === 'done') return s;
    if (s.phase === 'precopy' && tuning.postCopy) {
      const rest = Math.min(guest.memoryBytes, s.passRemainingBytes + s.dirtiedBytes);
      s = pauseForRest(s, rest, tuning, 'postcopy');
      continue;
    }
    if (s.phase === 'disk') {
      const left = s.diskTotalBytes - s.diskTransferredBytes;
      const need = transferMs(left, bw);
      if (need <= budget) {
        s = {
          ...s,
          phase: 'precopy',
          elapsedMs: s.elapsedMs + need,
          diskTransferredBytes: s.diskTotalBytes,
          iteration: 1,
          passRemainingBytes: guest.memoryBytes,
          dirtiedBytes: 0,
        };
        budget -= need;
        continue;
      }
      return { ...s, elapsedMs: s.elapsedMs + budget, diskTransferredBytes: s.diskTransferredBytes + bytesIn(budget, bw, left) };
    }
    if (s.phase === 'precopy') {
      s = skipSteadyPasses(s, guest, tuning, budget);
      budget = Math.max(0, dtMs - (s.elapsedMs - state.elapsedMs));
      const need = transferMs(s.passRemainingBytes, bw);
      if (need <= budget) {
        s = {
          ...s,
          elapsedMs: s.elapsedMs + need,
          memoryTransferredBytes: s.memoryTransferredBytes + s.passRemainingBytes,
          passRemainingBytes: 0,
          dirtiedBytes: dirtiedDuring(guest, s, need, s.dirtiedBytes),
        };
        budget -= need;
        s = endPass(s, guest, tuning);
        continue;
      }
      const sent = bytesIn(budget, bw, s.passRemainingBytes);
      return {
        ...s,
        elapsedMs: s.elapsedMs + budget,
        memoryTransferredBytes: s.memoryTransferredBytes + sent,
        passRemainingBytes: s.passRemainingBytes - sent,
        dirtiedBytes: dirtiedDuring(guest, s, budget, s.dirtiedBytes),
      };
    }
    // stopcopy / postcopy: the guest no longer dirties memory here; send the rest.
    const need = transferMs(s.passRemainingBytes, bw);
    if (need <= budget) {
      const elapsedMs = s.elapsedMs + need;
      return {
        ...s,
        phase: 'done',
        elapsedMs,
        memoryTransferredBytes: s.memoryTransferredBytes + s.passRemainingBytes,
        passRemainingBytes: 0,
        totalTimeMs: elapsedMs,
      };
    }
    const sent = bytesIn(budget, bw, s.passRemainingBytes);
    return {
      ...s,
      elapsedMs: s.elapsedMs + budget,
      memoryTransferredBytes: s.memoryTransferredBytes + sent,
      passRemainingBytes: s.passRemainingBytes - sent,
    };
  }
  return s;
}

/** What QEMU would call "remaining": unsent pages of this pass plus pages dirtied again. */
export function memoryRemainingBytes(state: ModelState, guest: GuestModel): number {
  switch (state.phase) {
    case 'disk':
      return guest.memoryBytes;
    case 'precopy':
      return Math.min(guest.memoryBytes, state.passRemainingBytes + state.dirtiedBytes);
    case 'stopcopy':
    case 'postcopy':
      return state.passRemainingBytes;
    case 'done':
      return 0;
  }
}

/** True while the guest is paused on the source (its heartbeat stops). */
export function sourcePaused(state: ModelState): boolean {
  return state.phase === 'stopcopy' || state.phase === 'postcopy' || state.phase === 'done';
}
