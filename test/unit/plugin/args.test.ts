// `kubectl vmove` command lines: what each one asks for, and the one-line refusals (exit 2).
import { parsePluginArgs, parseSelector, type Parsed } from '../../../src/plugin/args';

const ok = (argv: string[]) => {
  const p = parsePluginArgs(argv);
  if (!p.ok) throw new Error(`refused: ${p.error}`);
  return p;
};
const refusal = (argv: string[]): string => {
  const p: Parsed = parsePluginArgs(argv);
  if (p.ok) throw new Error(`accepted: ${JSON.stringify(p.command)}`);
  return p.error;
};

test('move: VM, target, mode, resources and --watch', () => {
  expect(ok(['move', 'web', '--to', 'node-b', '--mode', 'Live', '--cpu', '2', '--memory', '2Gi', '--watch']).command).toEqual({
    kind: 'move',
    vm: 'web',
    to: 'node-b',
    mode: 'Live',
    cpu: 2,
    memory: '2Gi',
    watch: true,
  });
  expect(ok(['move', 'db', '--selector', 'topology.kubernetes.io/zone=west,disk=ssd']).command).toEqual({
    kind: 'move',
    vm: 'db',
    selector: { 'topology.kubernetes.io/zone': 'west', disk: 'ssd' },
    watch: false,
  });
  // No target, no mode: automatic placement, mode Auto (the server's default).
  expect(ok(['move', 'web']).command).toEqual({ kind: 'move', vm: 'web', watch: false });
});

test('the usual kubectl flags, before or after the command', () => {
  expect(ok(['-n', 'prod', '--context', 'lab', 'move', 'web']).target).toEqual({ namespace: 'prod', context: 'lab', allNamespaces: false });
  expect(ok(['move', 'web', '--namespace=prod', '--kubeconfig', '/k']).target).toEqual({ namespace: 'prod', kubeconfig: '/k', allNamespaces: false });
  expect(ok(['watch', '-A'])).toMatchObject({ target: { allNamespaces: true }, command: { kind: 'watch', moves: [] } });
  expect(ok(['watch', 'a', 'b']).command).toEqual({ kind: 'watch', moves: ['a', 'b'] });
});

test('evacuate, cancel, history', () => {
  expect(ok(['evacuate', 'node-a', '--dry-run']).command).toEqual({ kind: 'evacuate', node: 'node-a', dryRun: true, watch: false });
  expect(ok(['evacuate', 'node-a', '-w']).command).toEqual({ kind: 'evacuate', node: 'node-a', dryRun: false, watch: true });
  expect(ok(['cancel', 'web-x7k2q']).command).toEqual({ kind: 'cancel', move: 'web-x7k2q' });
  expect(ok(['history', 'web-x7k2q', '-n', 'prod'])).toMatchObject({ target: { namespace: 'prod' }, command: { kind: 'history', move: 'web-x7k2q' } });
  expect(ok(['--help']).command).toEqual({ kind: 'help' });
  expect(ok(['move', '-h']).command).toEqual({ kind: 'help', topic: 'move' });
});

test.each([
  [['move', 'web', '--to', 'node-b', '--selector', 'zone=west'], 'move: --to and --selector exclude each other (a node, or labels a node must have)'],
  [['move', 'web', '--speed', 'fast'], "move: Unknown option '--speed'"],
  [['move'], 'move: which vm? (kubectl vmove move VM)'],
  [['move', 'web', 'db'], 'move: one vm only, got web db'],
  [['move', 'web', '--mode', 'Teleport'], 'move: --mode must be one of Auto, Live, Cold, Rebuild, got "Teleport"'],
  [['move', 'web', '--cpu', '0'], 'move: --cpu must be a whole number ≥ 1, got "0"'],
  [['move', 'web', '--cpu', '1.5'], 'move: --cpu must be a whole number ≥ 1, got "1.5"'],
  [['move', 'web', '--memory', 'lots'], 'move: --memory "lots" is not a Kubernetes quantity (e.g. 2Gi, 512Mi)'],
  [['move', 'web', '--selector', 'zone'], 'move: --selector: "zone" is not key=value (e.g. --selector topology.kubernetes.io/zone=west)'],
  [['move', 'Web_1'], 'move: "Web_1" is not a valid object name'],
  [['move', 'web', '--to', 'Node B'], 'move: --to "Node B" is not a valid node name'],
  [['move', 'web', '--to'], "move: Option '--to <value>' argument missing"],
  [['move', 'web', '-A'], 'move: -A/--all-namespaces applies to watch only'],
  [['watch', '-A', 'web-x'], 'watch: name moves or use -A, not both'],
  [['watch', '-A', '-n', 'prod'], 'watch: -A and -n/--namespace exclude each other'],
  [['evacuate', 'node-a', '--dry-run', '--watch'], 'evacuate: --dry-run moves nothing, there is nothing to --watch'],
  [['cancel'], 'cancel: which move? (kubectl vmove cancel MOVE)'],
  [['history', 'a', 'b'], 'history: one move only, got a b'],
  [['migrate', 'web'], 'unknown command "migrate" (move, watch, evacuate, cancel, history)'],
  [[], 'no command given (move, watch, evacuate, cancel, history); see kubectl vmove --help'],
])('%j is refused: %s', (argv, error) => {
  expect(refusal(argv)).toBe(error);
  expect(error).not.toContain('\n');
});

test('selectors: several labels, empty values allowed, keys with prefixes', () => {
  expect(parseSelector('a=1,vmove.dev/pool=gold,empty=')).toEqual({ a: '1', 'vmove.dev/pool': 'gold', empty: '' });
  expect(() => parseSelector('a=1,=2')).toThrow('"=2" is not key=value');
});
