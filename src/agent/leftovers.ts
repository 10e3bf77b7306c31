// Copies of a VM that a host keeps after the VM went on elsewhere: a target prepared for a move
// that was rolled back while this host was unreachable, a source whose clean-up never reached
// it, the old copy on a dead host whose VMs were recovered elsewhere. Nothing else removes them
// (the controller's move is over), and they hold disk space, memory (a paused Migrated source)
// and a definition that confuses whoever looks at the host.
//
// Only copies that do not run are ever removed, only when the VM's status says it lives on a
// host that reports it, and only after they have looked like leftovers for a grace period with
// no operation on that VM here — so a move that is just starting (its lock not yet seen through
// this agent's watch) is never mistaken for one.
import type { VirtualMachine } from '../api/types';
import type { VmInfo, VmState } from '../protocol/vm';

/** States of a copy that runs no guest code here. */
const IDLE_STATES: ReadonlySet<VmState> = new Set<VmState>(['Stopped', 'Incoming', 'Crashed', 'Migrated']);

/**
 * Why the copy `info` on `node` is a leftover, or undefined when it may be needed. `vm` is the
 * VirtualMachine of the same name, undefined when there is none. Pure.
 */
export function leftoverReason(info: VmInfo, vm: VirtualMachine | undefined, node: string): string | undefined {
  if (!IDLE_STATES.has(info.state)) return undefined;
  if (!vm) return 'its VirtualMachine no longer exists';
  if (vm.metadata.uid !== info.uid) return 'its VirtualMachine was deleted and created again';
  const st = vm.status ?? {};
  if (st.moveRef) return undefined; // a move owns every copy until it ends
  const home = st.nodeName;
  if (!home || home === node || st.scheduledNode === node) return undefined;
  // Only a home that reports the VM proves this copy is not the last one.
  if (st.phase === 'Running') return `the VM runs on ${home}`;
  if (st.phase === 'Stopped') return `the VM is defined and stopped on ${home}`;
  return undefined;
}

export interface LeftoverCollectorOptions {
  node: string;
  /** How long a copy must look like a leftover, with no operation on its VM, before it goes. */
  graceMs: number;
  /** When an operation on this VM last ran here (ms since epoch); Infinity while one runs. */
  lastActivity: (vmId: string) => number | undefined;
  /** Removes the copy (definition and local disks; shared disks stay), deciding again first. */
  remove: (info: VmInfo) => Promise<unknown>;
  now?: () => number;
}

/** Remembers since when each copy looked like a leftover, and removes those past the grace. */
export class LeftoverCollector {
  private readonly since = new Map<string, { uid: string; at: number }>();
  private readonly now: () => number;

  constructor(private readonly o: LeftoverCollectorOptions) {
    this.now = o.now ?? Date.now;
  }

  /** One look at everything the host holds; `vmOf` gives each copy's VirtualMachine. */
  async sweep(copies: VmInfo[], vmOf: (info: VmInfo) => VirtualMachine | undefined): Promise<void> {
    const now = this.now();
    const seen = new Set<string>();
    for (const info of copies) {
      if (!leftoverReason(info, vmOf(info), this.o.node)) continue;
      seen.add(info.id);
      const first = this.since.get(info.id);
      if (!first || first.uid !== info.uid) {
        this.since.set(info.id, { uid: info.uid, at: now });
        continue;
      }
      const quietSince = Math.max(first.at, this.o.lastActivity(info.id) ?? 0);
      if (now - quietSince < this.o.graceMs) continue;
      this.since.delete(info.id);
      await this.o.remove(info);
    }
    for (const id of [...this.since.keys()]) if (!seen.has(id)) this.since.delete(id);
  }
}
