// What an evacuation does to and says about its node: the cordon (recorded in the Cordoned
// condition before it is made, lifted on the way out only if vmove made it) and, for a dead host,
// the Fenced condition that lets its VMs start elsewhere. Pure.
import { OUT_OF_SERVICE_TAINT } from '../clusterView';
import { fenceHint, type HostState } from './hostState';
import type { StatusDraft } from './statusDraft';
import type { EvacuationActions, EvacuationFacts, EventNote } from './types';

/** Cordon the node (recording first that vmove did it), or say why not. */
export function cordon(f: EvacuationFacts, d: StatusDraft, actions: EvacuationActions, events: EventNote[]): void {
  const node = f.evacuation.spec.nodeName;
  if (f.evacuation.spec.cordon === false) {
    d.set({ type: 'Cordoned', status: 'False', reason: 'NotRequested', message: `spec.cordon is false: new VMs may still be placed on ${node}` });
    return;
  }
  const c = d.get('Cordoned');
  if (c?.status === 'True') {
    // Ours and lifted by someone (or the cordon itself was interrupted): the evacuation still wants it.
    if (c.reason === 'CordonedByVmove' && f.node.exists && !f.node.unschedulable) actions.node = 'cordon';
    return;
  }
  if (!f.node.exists) {
    d.set({ type: 'Cordoned', status: 'False', reason: 'NodeNotFound', message: `there is no Node ${node} to cordon` });
  } else if (f.node.unschedulable) {
    d.set({ type: 'Cordoned', status: 'True', reason: 'AlreadyCordoned', message: `${node} was already cordoned; it stays cordoned when the evacuation ends` });
  } else {
    d.set({ type: 'Cordoned', status: 'True', reason: 'CordonedByVmove', message: `vmove cordoned ${node} so nothing new lands there; cancelling or deleting this evacuation uncordons it` });
    actions.node = 'cordon';
    events.push({ type: 'Normal', reason: 'Cordoned', message: `cordoned ${node}` });
  }
}

/** Uncordon the node if vmove cordoned it (and no other evacuation of it still wants it cordoned). */
export function uncordon(f: EvacuationFacts, d: StatusDraft, actions: EvacuationActions, events: EventNote[]): string {
  const node = f.evacuation.spec.nodeName;
  const c = d.get('Cordoned');
  if (c?.reason !== 'CordonedByVmove') return c?.reason === 'AlreadyCordoned' ? `${node} stays cordoned, as it was before` : '';
  if (f.cordonWantedByOthers) {
    const message = `${node} stays cordoned: another evacuation of it is still running`;
    d.set({ type: 'Cordoned', status: 'True', reason: 'LeftForAnotherEvacuation', message });
    return message;
  }
  if (f.node.exists && f.node.unschedulable) {
    actions.node = 'uncordon';
    events.push({ type: 'Normal', reason: 'Uncordoned', message: `uncordoned ${node}, which this evacuation had cordoned` });
  }
  d.set({ type: 'Cordoned', status: 'False', reason: 'UncordonedByVmove', message: `vmove uncordoned ${node}, which it had cordoned` });
  return `${node} is uncordoned`;
}

/** Whether a dead host is fenced (its VMs may start elsewhere), and that a host came back before it was. */
export function fencing(f: EvacuationFacts, host: HostState, d: StatusDraft, events: EventNote[]): void {
  const node = f.evacuation.spec.nodeName;
  if (host.state === 'Dead') {
    d.set(
      host.fenced
        ? { type: 'Fenced', status: 'True', reason: 'OutOfServiceTaint', message: `${node} carries the taint ${OUT_OF_SERVICE_TAINT}: it is known to be off, so its VMs may start elsewhere` }
        : { type: 'Fenced', status: 'False', reason: 'WaitingForFence', message: `${host.why}; its VMs might still run: ${fenceHint(node)}` },
    );
    return;
  }
  const c = d.get('Fenced');
  if (host.state === 'Alive' && c?.status === 'False' && c.reason === 'WaitingForFence') {
    const message = `${node} came back before it was fenced: nothing was rebuilt, and its VMs are moved off it live instead`;
    d.set({ type: 'Fenced', status: 'False', reason: 'HostReturned', message });
    events.push({ type: 'Normal', reason: 'HostReturned', message });
  }
}
