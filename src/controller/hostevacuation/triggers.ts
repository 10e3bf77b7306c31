// Which HostEvacuations to look at again when something changes: the evacuation itself, one of
// its MoveRequests, a VM on (or leaving) its node, its node or its agent. Handlers only enqueue.
import type { HostEvacuation } from '../../api/types';
import type { ClusterView } from '../clusterView';
import { EVACUATION_LABEL } from './names';
import { isFinal } from './phase';
import { vmHost } from './vms';

/** Changes within this window are folded into one reconcile (a burst of move updates is common). */
const BATCH_MS = 200;

export interface EvacuationQueue {
  add(key: string): void;
  addAfter(key: string, delayMs: number): void;
}

export interface EvacuationTriggers {
  /** A node or its agent changed (called by the controller's host watch and liveness sweep). */
  hostChanged(node: string): void;
  /** Look at every evacuation (after the caches sync). */
  all(): void;
}

export function watchEvacuations(view: ClusterView, queue: EvacuationQueue): EvacuationTriggers {
  const active = (e: HostEvacuation): boolean => !isFinal(e.status?.phase) || !!e.metadata.deletionTimestamp;
  const onNode = (node: string | undefined): void => {
    if (!node) return;
    for (const e of view.evacuations.list()) if (e.spec.nodeName === node && active(e)) queue.addAfter(e.metadata.name ?? '', BATCH_MS);
  };
  view.evacuations.on({ onChange: (e) => queue.add(e.metadata.name ?? '') });
  const moveChanged = (labels: Record<string, string> | undefined): void => {
    const owner = labels?.[EVACUATION_LABEL];
    if (owner) queue.addAfter(owner, BATCH_MS);
  };
  view.moves.on({ onChange: (mr) => moveChanged(mr.metadata.labels), onDelete: (mr) => moveChanged(mr.metadata.labels) });
  view.vms.on({
    onChange: (vm, old) => {
      onNode(vmHost(vm));
      const before = old ? vmHost(old) : undefined;
      if (before !== vmHost(vm)) onNode(before);
    },
    onDelete: (vm) => onNode(vmHost(vm)),
  });
  return {
    hostChanged: onNode,
    all: () => {
      for (const e of view.evacuations.list()) queue.add(e.metadata.name ?? '');
    },
  };
}
