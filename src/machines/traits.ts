// What each move type is, as the rest of vmove needs to know it: one row per type instead of
// comparisons of type names spread over the controller. A new move type adds a row here and a
// machine (see docs/design.md, "Moves: machines and steps"). Pure.
import type { MoveType } from '../api/types';

export interface MoveTraits {
  /** The VM stays on its host (target = source): no bytes cross between hosts, the VM's node does not change. */
  sameHost: boolean;
  /** Memory streams while the guest runs: hosts must be live-migration capable, of the source's driver. */
  live: boolean;
  /** Counts against the cluster's parallel-move limit and the per-node outbound/inbound limits. */
  transfers: boolean;
  /** Holds CPU and memory on its target host while in flight. */
  occupiesTarget: boolean;
  /**
   * Acts without the source host's agent: it may start, and retry, once the source is fenced
   * (node.kubernetes.io/out-of-service), because it never needs the source to stop the VM.
   */
  startsFromFencedSource: boolean;
}

export const MOVE_TRAITS: Readonly<Record<MoveType, Readonly<MoveTraits>>> = {
  Live: { sameHost: false, live: true, transfers: true, occupiesTarget: true, startsFromFencedSource: false },
  Cold: { sameHost: false, live: false, transfers: true, occupiesTarget: true, startsFromFencedSource: false },
  Rebuild: { sameHost: false, live: false, transfers: true, occupiesTarget: true, startsFromFencedSource: true },
  ResizeInPlace: { sameHost: true, live: false, transfers: false, occupiesTarget: false, startsFromFencedSource: false },
};

/** Traits of a move type read from status (undefined before the type is chosen: counts as a transfer to another host). */
export const traitsOf = (type: MoveType | undefined): Readonly<MoveTraits> => MOVE_TRAITS[type ?? 'Cold'];
