// Which VMs an evacuation concerns: where a VM is, whether the evacuation's selector picks it,
// and how much it carries. Pure.
import type { HostEvacuationSpec, LabelSelector, MoveRequest, VirtualMachine } from '../../api/types';
import { parseBytes } from '../../api/quantity';

export const vmKey = (vm: { metadata: { namespace?: string; name?: string } }): string => `${vm.metadata.namespace ?? 'default'}/${vm.metadata.name ?? ''}`;

/** The VM's host as the move engine sees it: where its agent reports it, else where it was placed. */
export const vmHost = (vm: VirtualMachine): string | undefined => vm.status?.nodeName ?? vm.status?.scheduledNode;

/** The key (namespace/name) of the VM a MoveRequest moves. */
export const vmKeyOfMove = (mr: MoveRequest): string => `${mr.metadata.namespace}/${mr.spec.vmName}`;

/** Whether an evacuation moves this VM: on its node, not being deleted, picked by its selector. */
export const evacuates = (spec: HostEvacuationSpec, vm: VirtualMachine): boolean =>
  vmHost(vm) === spec.nodeName && !vm.metadata.deletionTimestamp && matchesSelector(vm.metadata.labels, spec.vmSelector);

export const localDiskBytes = (vm: VirtualMachine): number =>
  (vm.spec.disks ?? []).filter((d) => d.storage === 'Local').reduce((sum, d) => sum + parseBytes(d.size), 0);

/** metav1.LabelSelector semantics: every matchLabels pair and every expression must hold; empty matches all. */
export function matchesSelector(labels: Record<string, string> | undefined, selector: LabelSelector | undefined): boolean {
  if (!selector) return true;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(l[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(l[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** `a=b,c=d` (the CLI's selector syntax) to labels; throws on a malformed pair. */
export function parseLabels(text: string | undefined): Record<string, string> | undefined {
  if (!text) return undefined;
  const out: Record<string, string> = {};
  for (const pair of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const i = pair.indexOf('=');
    if (i <= 0) throw new Error(`"${pair}" is not a label pair key=value`);
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}
