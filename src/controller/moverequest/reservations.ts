// Moves this controller admitted or placed a moment ago whose status write has not come back into
// the cache yet. Counting them keeps the limits and the hosts' capacity exact between the
// awaits of concurrent reconciles (JavaScript runs one of them at a time between awaits).
import type { ClusterView, HostFacts, MoveInFlight } from '../clusterView';

export class MoveReservations {
  private readonly reserved = new Map<string, MoveInFlight>();

  constructor(private readonly view: ClusterView) {}

  hold(m: MoveInFlight): void {
    this.reserved.set(m.uid, { ...this.reserved.get(m.uid), ...m });
  }

  release(uid: string): void {
    this.reserved.delete(uid);
  }

  /** Moves in flight: the cache's, overridden by what this process decided but has not seen come back. */
  inFlight(): MoveInFlight[] {
    const merged = new Map(this.view.movesInFlight().map((m) => [m.uid, m]));
    for (const r of this.reserved.values()) merged.set(r.uid, { ...merged.get(r.uid), ...r, target: r.target ?? merged.get(r.uid)?.target });
    return [...merged.values()];
  }

  /** Host facts counting every move in flight, including those only this process knows of yet. */
  hosts(now: Date): HostFacts[] {
    return this.view.hosts(now.getTime(), this.inFlight());
  }
}
