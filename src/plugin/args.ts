// `kubectl vmove …` command lines into what to do, or a one-line reason why not. Pure: no I/O,
// so every refusal (exit code 2) is unit-tested without a cluster.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseQuantity } from '../api/quantity';

export type PluginMode = 'Auto' | 'Live' | 'Cold' | 'Rebuild';
const MODES: readonly PluginMode[] = ['Auto', 'Live', 'Cold', 'Rebuild'];

/** Where to talk: the usual kubeconfig, optionally another context and namespace. */
export interface Target {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  allNamespaces: boolean;
}

export type Command =
  | { kind: 'help'; topic?: string }
  | { kind: 'move'; vm: string; to?: string; selector?: Record<string, string>; mode?: PluginMode; cpu?: number; memory?: string; watch: boolean }
  | { kind: 'watch'; moves: string[] }
  | { kind: 'evacuate'; node: string; dryRun: boolean; watch: boolean }
  | { kind: 'cancel'; move: string }
  | { kind: 'history'; move: string };

export type Parsed = { ok: true; target: Target; command: Command } | { ok: false; error: string };

type Options = NonNullable<ParseArgsConfig['options']>;

const GLOBAL: Options = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  help: { type: 'boolean', short: 'h' },
};

const PER_COMMAND: Record<string, Options> = {
  move: {
    to: { type: 'string' },
    selector: { type: 'string', short: 'l' },
    mode: { type: 'string' },
    cpu: { type: 'string' },
    memory: { type: 'string' },
    watch: { type: 'boolean', short: 'w' },
  },
  watch: {},
  evacuate: { 'dry-run': { type: 'boolean' }, watch: { type: 'boolean', short: 'w' } },
  cancel: {},
  history: {},
};

export const COMMANDS = Object.keys(PER_COMMAND);

const fail = (error: string): Parsed => ({ ok: false, error });

/** "k=v,k2=v2" as a label map; throws with the part that is not one. */
export function parseSelector(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of raw.split(',')) {
    const m = /^([A-Za-z0-9][-A-Za-z0-9_./]*)=([-A-Za-z0-9_.]*)$/.exec(part.trim());
    if (!m) throw new Error(`--selector: "${part}" is not key=value (e.g. --selector topology.kubernetes.io/zone=west)`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

/** Only names the API server could hold (DNS subdomain), so a typo is refused before any call. */
const isName = (s: string): boolean => /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(s) && s.length <= 253;

export function parsePluginArgs(argv: string[]): Parsed {
  // First pass, lenient: find the sub-command wherever the global flags put it.
  let first;
  try {
    first = parseArgs({ args: argv, options: { ...GLOBAL, ...Object.assign({}, ...Object.values(PER_COMMAND)) }, allowPositionals: true, strict: false });
  } catch (e) {
    return fail((e as Error).message);
  }
  const name = first.positionals[0];
  if (!name) return first.values.help ? { ok: true, target: { allNamespaces: false }, command: { kind: 'help' } } : fail('no command given (move, watch, evacuate, cancel, history); see kubectl vmove --help');
  const own = PER_COMMAND[name];
  if (!own) return fail(`unknown command "${name}" (move, watch, evacuate, cancel, history)`);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...GLOBAL, ...own }, allowPositionals: true, strict: true });
  } catch (e) {
    // node:util words it "Unknown option '--x'. To specify a positional …": keep the first sentence.
    return fail(`${name}: ${(e as Error).message.split('. ')[0]!.replace(/\.$/, '')}`);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const args = parsed.positionals.slice(1);
  const target: Target = {
    ...(typeof v.kubeconfig === 'string' ? { kubeconfig: v.kubeconfig } : {}),
    ...(typeof v.context === 'string' ? { context: v.context } : {}),
    ...(typeof v.namespace === 'string' ? { namespace: v.namespace } : {}),
    allNamespaces: v['all-namespaces'] === true,
  };
  if (v.help) return { ok: true, target, command: { kind: 'help', topic: name } };
  if (target.allNamespaces && name !== 'watch') return fail(`${name}: -A/--all-namespaces applies to watch only`);
  if (target.allNamespaces && target.namespace) return fail(`${name}: -A and -n/--namespace exclude each other`);
  const badName = args.find((a) => !isName(a));
  if (badName !== undefined) return fail(`${name}: "${badName}" is not a valid object name`);
  const one = (what: string): string | Parsed => {
    if (args.length === 0) return fail(`${name}: which ${what}? (kubectl vmove ${name} ${what.toUpperCase()})`);
    if (args.length > 1) return fail(`${name}: one ${what} only, got ${args.join(' ')}`);
    return args[0]!;
  };
  switch (name) {
    case 'move': {
      const vm = one('vm');
      if (typeof vm !== 'string') return vm;
      return parseMove(vm, v, target);
    }
    case 'watch':
      if (target.allNamespaces && args.length) return fail('watch: name moves or use -A, not both');
      return { ok: true, target, command: { kind: 'watch', moves: args } };
    case 'evacuate': {
      const node = one('node');
      if (typeof node !== 'string') return node;
      if (v['dry-run'] && v.watch) return fail('evacuate: --dry-run moves nothing, there is nothing to --watch');
      return { ok: true, target, command: { kind: 'evacuate', node, dryRun: v['dry-run'] === true, watch: v.watch === true } };
    }
    default: {
      const move = one('move');
      if (typeof move !== 'string') return move;
      return { ok: true, target, command: { kind: name as 'cancel' | 'history', move } };
    }
  }
}

function parseMove(vm: string, v: Record<string, string | boolean | undefined>, target: Target): Parsed {
  const to = v.to as string | undefined;
  const rawSelector = v.selector as string | undefined;
  if (to !== undefined && rawSelector !== undefined) return fail('move: --to and --selector exclude each other (a node, or labels a node must have)');
  if (to !== undefined && !isName(to)) return fail(`move: --to "${to}" is not a valid node name`);
  let selector: Record<string, string> | undefined;
  if (rawSelector !== undefined) {
    try {
      selector = parseSelector(rawSelector);
    } catch (e) {
      return fail(`move: ${(e as Error).message}`);
    }
  }
  const mode = v.mode as string | undefined;
  if (mode !== undefined && !MODES.includes(mode as PluginMode)) return fail(`move: --mode must be one of ${MODES.join(', ')}, got "${mode}"`);
  const rawCpu = v.cpu as string | undefined;
  let cpu: number | undefined;
  if (rawCpu !== undefined) {
    cpu = /^\d+$/.test(rawCpu) ? Number(rawCpu) : NaN;
    if (!(cpu >= 1)) return fail(`move: --cpu must be a whole number ≥ 1, got "${rawCpu}"`);
  }
  const memory = v.memory as string | undefined;
  if (memory !== undefined) {
    try {
      parseQuantity(memory);
    } catch {
      return fail(`move: --memory "${memory}" is not a Kubernetes quantity (e.g. 2Gi, 512Mi)`);
    }
  }
  return {
    ok: true,
    target,
    command: {
      kind: 'move',
      vm,
      ...(to !== undefined ? { to } : {}),
      ...(selector ? { selector } : {}),
      ...(mode !== undefined ? { mode: mode as PluginMode } : {}),
      ...(cpu !== undefined ? { cpu } : {}),
      ...(memory !== undefined ? { memory } : {}),
      watch: v.watch === true,
    },
  };
}

export const USAGE = `usage: kubectl vmove <command> [options]

  move VM [--to NODE | --selector k=v,…] [--mode Live|Cold|Rebuild|Auto] [--cpu N] [--memory Q] [--watch]
                     create a MoveRequest for VM (generated name, printed); --watch follows it
  watch [MOVE…]      live view of moves: phase, route, progress, bytes, dirty vs transfer rate,
                     iteration and rung, ETA, expected downtime, why a move waits. Without names:
                     the moves in flight in the namespace (-A: in all). Exits when they have ended:
                     0 only if all Succeeded
  evacuate NODE [--dry-run] [--watch]
                     create a HostEvacuation of NODE; --dry-run prints the plan and moves nothing
  cancel MOVE        ask a move to stop (spec.cancel: true)
  history MOVE       the move's status.history as a table, with durations

options (every command):
  --kubeconfig PATH  kubeconfig file (default: $KUBECONFIG or ~/.kube/config)
  --context NAME     kubeconfig context to use
  -n, --namespace NS namespace (default: the context's, else "default")
  -A, --all-namespaces  watch: moves of every namespace

Exit codes: 0 done (watch: all Succeeded), 1 failed (a move did not succeed, API unreachable),
2 bad input (unknown flag, VM or move; --to with --selector; refused by the API server).
`;
