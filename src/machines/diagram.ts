// The move machines as graphs read from their definitions (states, transitions, guards, tags),
// and docs/machines.md drawn from those graphs (Mermaid) and from the machines' step tables, so
// the docs cannot drift from the code. `node dist/machines/diagram.js` prints the document
// (`make docs` writes it); a unit test keeps the committed file equal to it.
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import type { MovePhase, MoveType, MoveVariant } from '../api/types';
import { initialContext } from './attempts';
import { coldMove } from './cold';
import { liveMove } from './live';
import type { MoveDefinition } from './moveDefinition';
import { rebuildMove } from './rebuild';
import { resizeInPlaceMove } from './resizeInPlace';
import { traitsOf } from './traits';
import { COMMITTED_TAG, type MoveContext } from './vocabulary';

/** The event name eventless (`always`) transitions are listed under. */
export const ALWAYS = 'always';

export interface GraphState {
  name: string;
  final: boolean;
  committed: boolean;
}

export interface GraphEdge {
  from: string;
  /** undefined: the transition stays in `from` without re-entering it (only context changes). */
  to: string | undefined;
  /** The event type, or ALWAYS for an eventless transition. */
  event: string;
  /** Position among the candidates for this event in `from`: the first whose guard holds wins. */
  candidate: number;
  /** The guard's name; combined guards read `a and b`. */
  guard?: string;
}

export interface MachineGraph {
  id: string;
  initial: string;
  states: GraphState[];
  edges: GraphEdge[];
}

function guardName(guard: unknown): string | undefined {
  if (guard === undefined) return undefined;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && guard !== null && 'type' in guard) return String((guard as { type: unknown }).type);
  if (typeof guard === 'function') {
    // xstate's and()/or()/not() keep their operands on the function.
    const parts = (guard as { guards?: unknown[] }).guards;
    if (parts) return parts.map((g) => guardName(g) ?? '?').join(` ${guard.name} `);
    return guard.name && guard.name !== 'guard' ? guard.name : 'unnamed guard';
  }
  return 'unnamed guard';
}

/** Every state and every transition candidate of a machine with flat states, in definition order. */
export function machineGraph(machine: AnyStateMachine): MachineGraph {
  const nodes = Object.values(machine.root.states) as AnyStateNode[];
  const states = nodes.map((n) => ({ name: n.key, final: n.type === 'final', committed: n.tags.includes(COMMITTED_TAG) }));
  const edges: GraphEdge[] = [];
  for (const n of nodes) {
    const lists: Array<[string, readonly { target?: readonly AnyStateNode[] | undefined; guard?: unknown }[]]> = [
      ...(n.always ? [[ALWAYS, n.always] as [string, typeof n.always]] : []),
      ...n.transitions.entries(),
    ];
    for (const [event, candidates] of lists) {
      candidates.forEach((t, candidate) => {
        const guard = guardName(t.guard);
        edges.push({ from: n.key, to: t.target?.[0]?.key, event, candidate, ...(guard ? { guard } : {}) });
      });
    }
  }
  return { id: machine.id, initial: (machine.root.initial.target[0] as AnyStateNode).key, states, edges };
}

// ------------------------------------------------------------------ Mermaid

/** Guards every step result carries (results for other keys are ignored): left out of the labels. */
const IMPLIED_GUARDS = new Set(['isCurrentStep']);

function edgeLabel(e: GraphEdge): string {
  const shown = e.guard?.split(' and ').filter((g) => !IMPLIED_GUARDS.has(g)).join(' and ');
  const guard = shown ? ` [${shown}]` : '';
  return e.event === ALWAYS ? `always${guard}` : `${e.event}${guard}`;
}

/** A Mermaid state diagram of one machine: one arrow per pair of states, its labels stacked. */
export function mermaid(graph: MachineGraph): string {
  const arrows = new Map<string, string[]>();
  for (const e of graph.edges) {
    const key = `${e.from} --> ${e.to ?? e.from}`;
    const labels = arrows.get(key) ?? [];
    const label = edgeLabel(e);
    if (!labels.includes(label)) labels.push(label);
    arrows.set(key, labels);
  }
  const names = (pick: (s: GraphState) => boolean) => graph.states.filter(pick).map((s) => s.name);
  const committed = names((s) => s.committed);
  const terminal = names((s) => s.final);
  const lines = [
    'stateDiagram-v2',
    '  classDef committed fill:#fde0dc,stroke:#c62828,color:#000',
    '  classDef rollback fill:#fff3cd,stroke:#b7791f,color:#000',
    '  classDef terminal fill:#e8e8e8,stroke:#555,color:#000',
    `  [*] --> ${graph.initial}`,
    ...[...arrows].map(([arrow, labels]) => `  ${arrow}: ${labels.join('<br/>')}`),
    ...terminal.map((t) => `  ${t} --> [*]`),
    ...(committed.length ? [`  class ${committed.join(',')} committed`] : []),
    ...(graph.states.some((s) => s.name === 'RollingBack') ? ['  class RollingBack rollback'] : []),
    `  class ${terminal.join(',')} terminal`,
  ];
  return lines.join('\n');
}

// ------------------------------------------------------------------ the document

interface MachineDoc {
  move: MoveDefinition;
  variants: MoveVariant[];
}

const MACHINES: MachineDoc[] = [
  { move: liveMove, variants: ['SharedStorage', 'BlockMigration'] },
  { move: coldMove, variants: ['SharedStorage', 'DiskCopy'] },
  { move: rebuildMove, variants: ['FromSharedDisk', 'FromImage'] },
  { move: resizeInPlaceMove, variants: ['Hotplug', 'Restart'] },
];

/** A context for reading a machine's step table: a running VM placed on another host (or its own). */
function sampleContext(type: MoveType, variant: MoveVariant): MoveContext {
  const resources = { cpu: 2, memoryBytes: 2 * 1024 ** 3 };
  const ctx = initialContext({
    moveType: type,
    variant,
    reason: 'docs',
    sourceNode: 'source',
    vmRunning: true,
    before: resources,
    after: resources,
    policy: { maxDowntimeMs: 300, bandwidthMiBps: 0, completionTimeoutPerGiB: 60, progressTimeoutSeconds: 120, allowAutoConverge: false, allowPostCopy: false, maxAttempts: 3 },
    bytesToMove: 0,
  });
  return { ...ctx, targetNode: traitsOf(type).sameHost ? 'source' : 'target', endpoint: { migrationUri: 'tcp:target:49152' } };
}

/** Which agent operation each state asks for, per variant (a running VM); skipped states say so. */
function stepTable(doc: MachineDoc, graph: MachineGraph): string {
  const acting = graph.states.filter((s) => !s.final && !['Pending', 'Scheduling', 'RollingBack'].includes(s.name));
  const guards = doc.move.machine.implementations.guards as Record<string, (args: { context: MoveContext; event: unknown }, params: unknown) => boolean>;
  const cell = (state: string, variant: MoveVariant) => {
    const ctx = sampleContext(doc.move.type, variant);
    const skips = graph.edges.filter((e) => e.from === state && e.event === ALWAYS && e.to !== 'RollingBack' && e.guard);
    if (skips.some((e) => guards[e.guard!]?.({ context: ctx, event: { type: 'docs' } }, undefined))) return 'skipped';
    const step = doc.move.step(state as MovePhase, ctx);
    return step ? `\`${step.request.kind}\` on ${step.role}` : '—';
  };
  return [
    `| state | ${doc.variants.join(' | ')} |`,
    `|---|${doc.variants.map(() => '---').join('|')}|`,
    ...acting.map((s) => `| ${s.name}${s.committed ? ' ⚑' : ''} | ${doc.variants.map((v) => cell(s.name, v)).join(' | ')} |`),
  ].join('\n');
}

const LEGEND = `Read each diagram from \`Pending\`. Arrows carry the events the controller feeds the machine
(\`START\`, \`PLACED\`, \`REJECTED\`, \`STEP_SUCCEEDED\` / \`STEP_FAILED\` for the current step,
\`PROGRESS\`, \`AGENT_LOST\`, \`CANCEL\`), with the guard that must hold in brackets. When an
event has several arrows from one state, the first listed whose guard holds is taken.

- **Point of no return** (red, ⚑ in the tables, tag \`committed\`): from \`SwitchingOver\` on the VM
  runs, or is starting, on the target. A \`CANCEL\` there is recorded (\`cancelIgnored\`) and the
  move completes; before it, \`CANCEL\` rolls back to \`Cancelled\` with the VM untouched.
- **Rollback** (amber): \`RollingBack\` undoes what the attempt reached, one agent step at a time,
  then ends \`Failed\` or \`Cancelled\`, or goes back to \`Pending\` for another attempt after a
  transient failure (only after a complete rollback, on a source that can act).
- **always [guard]**: taken without an event as soon as the guard holds — a state skipped for
  this move (a stopped VM, shared storage, one host), or a rollback with nothing left to do.
- An arrow from a state to itself changes only the context: a rung up the convergence ladder,
  a step retried in place, a lost host's steps dropped, a cancel recorded.
- Step results and progress carry the current step's key (\`<attempt>.<step>\`); reports for any
  other key are ignored, so they have no arrows.`;

/** docs/machines.md */
export function machinesMarkdown(): string {
  const sections = MACHINES.map((doc) => {
    const graph = machineGraph(doc.move.machine);
    return [
      `## ${doc.move.type}`,
      '',
      `Variants: ${doc.variants.map((v) => `\`${v}\``).join(', ')}.`,
      '',
      '```mermaid',
      mermaid(graph),
      '```',
      '',
      'The agent operation each state runs (for a running VM):',
      '',
      stepTable(doc, graph),
    ].join('\n');
  });
  return [
    '<!-- Generated from src/machines by `make docs` (src/machines/diagram.ts). Do not edit by hand. -->',
    '# Move machines',
    '',
    LEGEND,
    '',
    ...sections.flatMap((s) => [s, '']),
  ].join('\n');
}

if (require.main === module) process.stdout.write(machinesMarkdown());
