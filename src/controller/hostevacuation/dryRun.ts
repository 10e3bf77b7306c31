// `spec.dryRun` (and `vmove plan`): the plan the evacuation would follow now, in status.plan, with
// the target, move type and variant of each VM and why every other host was rejected, its
// evacuation strategy, what would be done with it (action) and every blocker found. Nothing is
// moved and the node is not cordoned; the evacuation ends Succeeded at once. Pure.
import type { MoveMode } from '../../api/types';
import { knownHostState, type HostState } from './hostState';
import { fencing } from './nodeConditions';
import { planEvacuation, plannedMove } from './planner';
import type { StatusDraft } from './statusDraft';
import { plural } from './tally';
import type { EvacuationDecision, EvacuationFacts, EventNote } from './types';
import { evacuates } from './vms';

export function dryRun(f: EvacuationFacts, host: HostState, d: StatusDraft, events: EventNote[]): EvacuationDecision {
  const e = f.evacuation;
  const node = e.spec.nodeName;
  const now = f.now.toISOString();
  const mode = e.spec.mode ?? 'Auto';
  const vms = f.vms.filter((vm) => evacuates(e.spec, vm));
  // A host that is not alive is planned as it would be recovered once dead and fenced: by rebuilds.
  const moveMode: MoveMode = host.state !== 'Alive' && (mode === 'Auto' || mode === 'Rebuild') ? 'Rebuild' : mode;
  const steps = planEvacuation({ node, vms, hosts: f.hosts, mode: moveMode, nodeSelector: e.spec.target?.nodeSelector, strategies: f.strategies });
  const placed = steps.filter((s) => s.targetNode).length;
  const shut = steps.filter((s) => s.action === 'Shutdown').length;
  const person = steps.filter((s) => s.action === 'WaitForPerson').length;
  const blocked = steps.length - placed - shut - person;
  const notes = [
    `dry run: ${placed} of ${plural(steps.length, 'VM')} on ${node} have a target`,
    shut ? `${shut} would be shut down and left on ${node}` : '',
    person ? `${person} would wait for a person (evacuationStrategy None)` : '',
    blocked ? `${blocked} cannot be moved now (see status.plan)` : '',
    host.state === 'Dead' && host.fenced ? `${node} is dead and fenced: its VMs would be rebuilt` : host.state !== 'Alive' ? `${host.why}: its VMs would be rebuilt only once it is dead and fenced` : '',
    `nothing was moved and ${node} was not cordoned`,
  ].filter(Boolean);
  const message = notes.join('; ');
  const hostState = knownHostState(host);
  if (host.state === 'Dead') fencing(f, host, d, []);
  d.set({ type: 'Progressing', status: 'False', reason: 'DryRun', message });
  d.set({ type: 'Ready', status: 'True', reason: 'DryRun', message });
  d.standing('Succeeded', { state: 'done', reason: 'DryRun' });
  events.push({ type: 'Normal', reason: 'Planned', message });
  return {
    status: {
      phase: 'Succeeded',
      ...(hostState ? { hostState } : {}),
      total: steps.length,
      plan: steps.map((s) => plannedMove(s)),
      startTime: d.prev.startTime ?? now,
      completionTime: now,
      observedGeneration: e.metadata.generation,
      conditions: d.conditions,
      message,
    },
    actions: { create: [], cancel: [], delete: [], stop: [], release: false },
    events,
  };
}
