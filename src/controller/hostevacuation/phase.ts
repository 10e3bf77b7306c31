// An evacuation's phase, from how its VMs and its host stand: the phase and the message that
// explains it, the Progressing, Ready, Reconciling and Stalled conditions that say it, and the events of a change. Pure.
import type { Condition, EvacuationPhase, MoveRequest } from '../../api/types';
import { traitsOf } from '../../machines/traits';
import { OUT_OF_SERVICE_TAINT } from '../clusterView';
import { fenceHint, type HostState } from './hostState';
import type { StatusDraft } from './statusDraft';
import { plural, type Counts } from './tally';
import type { EventNote } from './types';

/** Failed and given-up VMs named in status.message (the rest are in status.moves and status.plan). */
const NAMED_IN_MESSAGE = 5;

const FINAL: readonly EvacuationPhase[] = ['Succeeded', 'Failed', 'Cancelled'];
export const isFinal = (phase: EvacuationPhase | undefined): boolean => !!phase && FINAL.includes(phase);

export interface PhaseInput {
  node: string;
  host: HostState;
  counts: Counts;
  /** Why each VM given up on was (by key). */
  gaveUp: ReadonlyMap<string, string>;
  /** MoveRequests created on this look. */
  creating: number;
  /** Why the host's state holds every move, if it does. */
  hold?: string;
  /** The VMs are recovered from a dead host rather than moved off a live one. */
  recovered: boolean;
  /** Each VM's latest MoveRequest, for the sentence that ends a successful evacuation. */
  latest: (MoveRequest | undefined)[];
  cordoned: Condition | undefined;
  /** VMs stopped and left on the node (evacuationStrategy Shutdown). */
  stopped?: number;
  /** VMs that wait for a person (evacuationStrategy None), by key. */
  waitsForPerson?: readonly string[];
}

/** The evacuation's phase (while it evacuates) and the message that explains it. */
export function phaseOf(p: PhaseInput): { phase: EvacuationPhase; message: string } {
  const { node, host, hold, recovered } = p;
  const { total, succeeded, failed, inProgress, pending } = p.counts;
  const done = pending === 0 && inProgress === 0;
  if (done && failed === 0) return { phase: 'Succeeded', message: successMessage(p.latest, node, recovered, p.cordoned, p.stopped ?? 0) };
  if (done) {
    const named = [...p.gaveUp].slice(0, NAMED_IN_MESSAGE).map(([k, why]) => `${k}: ${why}`);
    const more = failed > NAMED_IN_MESSAGE ? `; and ${failed - NAMED_IN_MESSAGE} more (see status.moves and status.plan)` : '';
    return { phase: 'Failed', message: `${failed} of ${plural(total, 'VM')} could not be moved off ${node} — ${named.join('; ')}${more}` };
  }
  if (host.state === 'Dead' && !host.fenced) {
    return { phase: 'WaitingForFence', message: `${host.why}. vmove does not start its ${plural(pending, 'VM')} elsewhere while they might still run there: ${fenceHint(node)}` };
  }
  if (host.state === 'Unreachable' && inProgress === 0 && p.creating === 0) return { phase: 'Pending', message: `waiting: ${host.why}` };
  const verb = recovered ? 'recovered from' : 'moved off';
  let message = `${succeeded} of ${plural(total, 'VM')} ${verb} ${node}; ${inProgress} moving, ${pending} waiting${failed ? `, ${failed} could not be moved` : ''}`;
  if (hold && pending) message += ` (${hold})`;
  const person = p.waitsForPerson ?? [];
  if (!hold && person.length) message += `; waiting for a person (evacuationStrategy None): ${person.slice(0, NAMED_IN_MESSAGE).join(', ')}${person.length > NAMED_IN_MESSAGE ? ` and ${person.length - NAMED_IN_MESSAGE} more` : ''}`;
  return { phase: 'Evacuating', message };
}

/** The sentence that ends a successful evacuation: what became of its VMs. */
function successMessage(latest: (MoveRequest | undefined)[], node: string, recovered: boolean, cordoned: Condition | undefined, stopped: number): string {
  const moved = latest.filter((m): m is MoveRequest => !!m && m.status?.phase === 'Succeeded');
  const count = (pred: (m: MoveRequest) => boolean) => moved.filter(pred).length;
  const cordonTail = cordoned?.reason === 'CordonedByVmove' ? `; ${node} stays cordoned while this HostEvacuation exists (delete it to uncordon)` : '';
  const tail = `${stopped ? `; ${plural(stopped, 'VM')} stopped and left on ${node} (evacuationStrategy Shutdown)` : ''}${cordonTail}`;
  if (moved.length === 0) return stopped ? `${node} runs no VMs${tail}` : `${node} has no VMs to move${tail}`;
  if (recovered) {
    const shared = count((m) => m.status?.variant === 'FromSharedDisk');
    const image = count((m) => m.status?.variant === 'FromImage');
    // A move that needs the source's agent ran while the host was still alive.
    const before = count((m) => !traitsOf(m.status?.moveType).startsFromFencedSource);
    const parts = [
      shared ? `${plural(shared, 'VM')} restarted from ${shared === 1 ? 'its' : 'their'} shared disks` : '',
      image ? `${plural(image, 'VM')} rebuilt from ${image === 1 ? 'its' : 'their'} image — the data on ${image === 1 ? 'its' : 'their'} local disks was lost` : '',
      before ? `${plural(before, 'VM')} moved before the host died` : '',
    ].filter(Boolean);
    return `recovered the VMs of ${node}: ${parts.join('; ')}${tail}`;
  }
  // The sentence names the move types: these comparisons are its words, not decisions.
  const live = count((m) => m.status?.moveType === 'Live');
  const cold = count((m) => m.status?.moveType === 'Cold');
  const other = moved.length - live - cold;
  const how = [live ? `${live} live` : '', cold ? `${cold} cold` : '', other ? `${other} rebuilt` : ''].filter(Boolean).join(', ');
  return `${node} ${stopped ? 'runs no VMs' : 'is empty'}: ${plural(moved.length, 'VM')} moved off (${how})${tail}`;
}

/** The conditions that say the phase. */
export function setPhaseConditions(d: StatusDraft, phase: EvacuationPhase, message: string, recovered: boolean): void {
  const final = isFinal(phase);
  d.set(
    final
      ? { type: 'Progressing', status: 'False', reason: phase, message }
      : phase === 'Evacuating'
        ? { type: 'Progressing', status: 'True', reason: recovered ? 'Recovering' : 'Evacuating', message }
        : { type: 'Progressing', status: 'False', reason: phase === 'WaitingForFence' ? 'WaitingForFence' : 'HostUnreachable', message },
  );
  d.set(phase === 'Succeeded' ? { type: 'Ready', status: 'True', reason: 'NodeEmpty', message } : { type: 'Ready', status: 'False', reason: phase, message: final ? message : `the evacuation is ${phase}` });
  // Waiting for a fence is stalled: only a person (or a fencing agent) powering the host off moves it on.
  d.standing(
    phase,
    phase === 'Succeeded'
      ? { state: 'done', reason: phase }
      : phase === 'Failed'
        ? { state: 'stalled', reason: 'VMsNotMoved', message }
        : phase === 'WaitingForFence'
          ? { state: 'stalled', reason: 'WaitingForFence', message }
          : { state: 'working', reason: phase === 'Pending' ? 'HostUnreachable' : recovered ? 'Recovering' : phase, message },
  );
}

/** The events of a change of phase (none while the phase holds). */
export function phaseEvents(prev: EvacuationPhase | undefined, phase: EvacuationPhase, message: string, node: string): EventNote[] {
  const events: EventNote[] = [];
  if (phase === prev) return events;
  if (phase === 'WaitingForFence') events.push({ type: 'Warning', reason: 'WaitingForFence', message });
  if (prev === 'WaitingForFence' && phase !== 'Failed') events.push({ type: 'Normal', reason: 'Fenced', message: `${node} is fenced (${OUT_OF_SERVICE_TAINT}): recovering its VMs elsewhere` });
  if (phase === 'Pending' && prev) events.push({ type: 'Warning', reason: 'HostUnreachable', message });
  if (phase === 'Succeeded') events.push({ type: 'Normal', reason: 'Succeeded', message });
  if (phase === 'Failed') events.push({ type: 'Warning', reason: 'Failed', message });
  return events;
}
