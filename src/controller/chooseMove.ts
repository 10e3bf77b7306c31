// Which machine moves this VM, in which variant, and why — from the request, the VM and the
// hosts. Pure. The answer is fixed when the move leaves Pending and shown in status.reason.
import type { MoveRequestSpec, MoveType, MoveVariant, StorageKind, VirtualMachine } from '../api/types';
import { parseBytes } from '../api/quantity';
import type { HostFacts } from './clusterView';
import { hasRoomToGrow, type PlacementNeeds, type PlacementQuery, type PlacementResult } from './placement';

export interface MoveChoice {
  moveType: MoveType;
  variant: MoveVariant;
  reason: string;
  before: { cpu: number; memoryBytes: number };
  after: { cpu: number; memoryBytes: number };
}

export type ChoiceResult = { ok: true; choice: MoveChoice } | { ok: false; reason: string };

export interface ChoiceFacts {
  vm: VirtualMachine;
  /** The VM's current host (status.nodeName, else where it was scheduled). */
  sourceNode: string;
  source?: HostFacts;
  /** Ask placement whether some host would take the VM with these needs (Auto picks Live only if one would). */
  probe: (needs: PlacementNeeds, q: Pick<PlacementQuery, 'nodeName' | 'nodeSelector'>) => PlacementResult;
}

export const vmStorage = (vm: VirtualMachine): StorageKind[] => [...new Set((vm.spec.disks ?? []).map((d) => d.storage))];
export const hasLocalDisks = (vm: VirtualMachine): boolean => vmStorage(vm).includes('Local');
export const vmRunning = (vm: VirtualMachine): boolean => vm.spec.running !== false;

export function currentResources(vm: VirtualMachine): { cpu: number; memoryBytes: number } {
  return { cpu: vm.status?.cpu ?? vm.spec.cpu, memoryBytes: parseBytes(vm.status?.memory ?? vm.spec.memory) };
}

const fail = (reason: string): ChoiceResult => ({ ok: false, reason });
const ok = (choice: MoveChoice): ChoiceResult => ({ ok: true, choice });

export function chooseMove(spec: MoveRequestSpec, f: ChoiceFacts): ChoiceResult {
  const mode = spec.mode ?? 'Auto';
  const storagePref = spec.storage ?? 'Auto';
  const before = currentResources(f.vm);
  const after = {
    cpu: spec.resources?.cpu ?? before.cpu,
    memoryBytes: spec.resources?.memory !== undefined ? parseBytes(spec.resources.memory) : before.memoryBytes,
  };
  const resizes = after.cpu !== before.cpu || after.memoryBytes !== before.memoryBytes;
  const running = vmRunning(f.vm);
  const local = hasLocalDisks(f.vm);
  const caps = f.source?.agent?.capabilities;
  const targetIsSource = spec.target?.nodeName === f.sourceNode;
  const noTarget = !spec.target?.nodeName && !spec.target?.nodeSelector;
  const base = { before, after };

  if (mode === 'Rebuild') {
    const variant: MoveVariant = local ? 'FromImage' : 'FromSharedDisk';
    const why = local ? 'its local disks cannot be reused elsewhere: they are recreated from the image (their data is lost)' : 'it restarts from its shared disks';
    return ok({ ...base, moveType: 'Rebuild', variant, reason: `mode Rebuild: ${why}` });
  }

  // A resize that can stay where the VM is.
  if (spec.resources && (targetIsSource || (noTarget && mode === 'Auto'))) {
    if (!resizes) return fail('spec.resources equal what the VM already has: nothing would change');
    const grow = { cpu: Math.max(0, after.cpu - before.cpu), memoryBytes: Math.max(0, after.memoryBytes - before.memoryBytes) };
    if (targetIsSource || (f.source && hasRoomToGrow(f.source, grow))) {
      const hot = running && !!caps?.hotplug && after.cpu >= before.cpu && after.memoryBytes >= before.memoryBytes;
      const why = hot
        ? 'the VM runs and only grows, and its host hotplugs CPU and memory'
        : !running
          ? 'the VM is stopped: it is redefined with the new size'
          : !caps?.hotplug
            ? "its host's driver cannot hotplug: the VM restarts with the new size"
            : 'shrinking needs a restart';
      return ok({ ...base, moveType: 'ResizeInPlace', variant: hot ? 'Hotplug' : 'Restart', reason: `resize in place on ${f.sourceNode}: ${why}` });
    }
    // Not enough room here: the resize becomes a cold move.
  }
  if (targetIsSource) return fail(`target.nodeName is the VM's current node (${f.sourceNode}) and nothing would change`);

  const coldVariant = (): ChoiceResult => {
    if (storagePref === 'Shared' && local) return fail('storage: Shared, but the VM has Local disks: they must be copied (use storage: Block or Auto)');
    const copy = storagePref === 'Block' || local;
    return ok({ ...base, moveType: 'Cold', variant: copy ? 'DiskCopy' : 'SharedStorage', reason: '' });
  };
  const liveVariant = (): MoveVariant => (storagePref === 'Block' || local ? 'BlockMigration' : 'SharedStorage');

  if (mode === 'Cold' || (mode === 'Auto' && (resizes || !running))) {
    const r = coldVariant();
    if (!r.ok) return r;
    const why = mode === 'Cold' ? 'mode Cold' : resizes ? `mode Auto: the move resizes the VM (${before.cpu}→${after.cpu} CPU), which needs a restart` : 'mode Auto: the VM is stopped';
    const room = spec.resources && noTarget ? `; ${f.sourceNode} has no room to grow in place` : '';
    return ok({ ...r.choice, reason: `${why}${room}; ${r.choice.variant === 'DiskCopy' ? 'its Local disks are copied' : 'its disks stay on shared storage'}` });
  }

  // Live, or Auto for a running VM without a resize.
  if (mode === 'Live' && resizes) return fail('a live move cannot change resources: use mode Cold or Auto');
  if (mode === 'Live' && !running) return fail('the VM is stopped: a live move needs a running VM (use mode Cold or Auto)');
  if (storagePref === 'Shared' && local) return fail('storage: Shared, but the VM has Local disks: use storage: Block or Auto');
  const variant = liveVariant();
  const block = variant === 'BlockMigration';
  const sourceCan = !!caps?.liveMigration && (!block || !!caps.blockMigration);
  if (mode === 'Live') {
    if (!sourceCan) return fail(`the source host ${f.sourceNode} cannot send a ${block ? 'block' : 'live'} migration`);
    return ok({ ...base, moveType: 'Live', variant, reason: `mode Live; ${block ? 'Local disks are mirrored to the target (block migration)' : 'disks stay on shared storage'}` });
  }
  // Auto: live when the VM and both hosts allow it.
  if (sourceCan) {
    const probe = f.probe(
      { cpu: after.cpu, memoryBytes: after.memoryBytes, storage: vmStorage(f.vm), liveMigration: true, blockMigration: block, driver: caps?.driver },
      { nodeName: spec.target?.nodeName, nodeSelector: spec.target?.nodeSelector },
    );
    if (probe.nodeName || probe.waitable) {
      return ok({ ...base, moveType: 'Live', variant, reason: `mode Auto: the VM runs and ${probe.nodeName ? 'a target' : 'targets'} can receive it live${block ? ' (Local disks by block migration)' : ''}` });
    }
    const r = coldVariant();
    if (!r.ok) return r;
    return ok({ ...r.choice, reason: `mode Auto: no host can receive it live (${probe.message}); moving cold` });
  }
  const r = coldVariant();
  if (!r.ok) return r;
  return ok({ ...r.choice, reason: `mode Auto: the source host ${f.sourceNode} cannot migrate live; moving cold` });
}
