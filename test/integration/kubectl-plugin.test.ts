// `kubectl vmove` as users run it: through the real kubectl (bin/ on PATH), against a real
// kube-apiserver, the controller and sim agents on a link slow enough to watch a move cross it.
// The live view runs in a real terminal (a tmux pane: send-keys, capture-pane); the plain view,
// cancel, history, evacuate --dry-run and the refusals (exit code 2) run with pipes.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostEvacuation, MoveRequest } from '../../src/api/types';
import { vmovePath } from '../../src/kube/paths';
import { REPO, run } from '../support/hackTools';
import { moveYaml, startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(300_000);

let env: VmoveEnv;
let tmp: string;
let tmux: string;
let socket: string;
// 64 MiB/s in real time: a 2 GiB guest takes half a minute to cross, ~15 status updates.
const slowLink = ['--sim-bandwidth-mibps', '64', '--sim-time-scale', '1'];

/** The environment a user's shell has: bin/ (and Node 24) on PATH, the cluster's kubeconfig. */
const userEnv = (): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, PATH: [path.join(REPO, 'bin'), path.dirname(process.execPath), process.env.PATH].join(':'), KUBECONFIG: env.cluster.kubeconfig };
  // jest quiets vmove's logs through this; a user's shell does not set it.
  delete e.VMOVE_LOG_LEVEL;
  return e;
};

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** `kubectl vmove …` through the real kubectl, stdout a pipe (not a terminal), from another folder. */
function plugin(args: string[], timeoutMs = 120_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', ['vmove', ...args], { env: userEnv(), cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 128, stdout, stderr }));
  });
}

const tmuxRun = (...args: string[]): string => {
  const r = spawnSync(tmux, ['-S', socket, '-f', '/dev/null', ...args], { env: userEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

beforeAll(async () => {
  tmux = run('bash', [path.join(REPO, 'hack', 'install-tmux.sh')]).stdout.trim().split('\n').pop()!;
  tmp = mkdtempSync(path.join(tmpdir(), 'vmove-plugin-'));
  socket = path.join(tmp, 'tmux.sock');
  env = await startVmoveEnv({ nodes: ['node-a', 'node-b', 'node-c'], nodeDefaults: { agentArgs: slowLink } });
  await env.apply(vmYaml('big', { node: 'node-a', memory: '2Gi' }));
  await env.apply(vmYaml('doomed', { node: 'node-a', memory: '256Mi', annotations: { 'sim.vmove.dev/fail-at': 'migrate' } }));
  await env.apply(vmYaml('slow', { node: 'node-c', memory: '2Gi' }));
  for (const [vm, node] of [['big', 'node-a'], ['doomed', 'node-a'], ['slow', 'node-c']] as const) {
    await env.waitFor(`${vm} running on ${node}`, async () => {
      const s = (await env.vm(vm))?.status;
      return s?.phase === 'Running' && s.nodeName === node;
    });
  }
});

afterAll(async () => {
  if (socket) spawnSync(tmux, ['-S', socket, 'kill-server']);
  await env?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The figures of the move's row on one screen. */
function rowOf(screen: string, vm: string): { hashes: number; sentMiB: number; eta?: string } | undefined {
  const line = screen.split('\n').find((l) => new RegExp(`^\\S+\\s+${vm}\\s`).test(l));
  const bar = line && /\[([#.]{20})\]/.exec(line);
  const sent = line && /(\d+(?:\.\d)?) (B|KiB|MiB|GiB) \/ (\d+(?:\.\d)?) GiB/.exec(line);
  if (!line || !bar || !sent) return undefined;
  const unit = { B: 2 ** -20, KiB: 2 ** -10, MiB: 1, GiB: 1024 }[sent[2] as 'B'];
  const eta = /\s(\d+s|\d+m\d\ds)\s/.exec(line.slice(line.indexOf(']')));
  return { hashes: bar[1]!.split('#').length - 1, sentMiB: Number(sent[1]) * unit, ...(eta ? { eta: eta[1]! } : {}) };
}

test('in a terminal, move --watch redraws one row as the bytes cross: the bar and the bytes grow, an ETA shows, it ends Succeeded with exit code 0', async () => {
  tmuxRun('new-session', '-d', '-s', 'vmove', '-x', '250', '-y', '20', '-c', tmp, 'bash --norc --noprofile');
  tmuxRun('send-keys', '-t', 'vmove', 'kubectl vmove move big --to node-b --mode Live --watch; echo "EXIT=$?"', 'Enter');
  const screens: string[] = [];
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    const screen = tmuxRun('capture-pane', '-p', '-t', 'vmove');
    if (screens[screens.length - 1] !== screen) screens.push(screen);
    if (/EXIT=\d+/.test(screen)) break;
    await sleep(250);
  }
  const last = screens[screens.length - 1]!;
  const rows = screens.map((s) => rowOf(s, 'big')).filter((r) => r !== undefined);
  const sent = [...new Set(rows.map((r) => r.sentMiB))];
  const bars = [...new Set(rows.map((r) => r.hashes))];
  const why = `screens seen:\n${screens.slice(-3).join('\n----\n')}`;
  expect({ exit: /EXIT=(\d+)/.exec(last)?.[1], why }).toEqual({ exit: '0', why });
  expect(last).toMatch(/moverequest\.vmove\.dev\/big-\w+ created/);
  expect(last).toMatch(/1 move: 1 Succeeded\. All ended: Succeeded\./);
  expect(last).toMatch(/big\s+Succeeded\s+node-a → node-b\s+\[#{20}\] 100%/);
  // The bytes sent and the bar grew, frame after frame, and never went back.
  expect(sent.length).toBeGreaterThanOrEqual(3);
  expect(sent).toEqual([...sent].sort((a, b) => a - b));
  expect(bars.length).toBeGreaterThanOrEqual(2);
  expect(bars).toEqual([...bars].sort((a, b) => a - b));
  // While it moved: the ETA, the rates, the iteration and rung, the downtime the rung allows.
  expect(rows.some((r) => r.eta !== undefined)).toBe(true);
  const moving = screens.find((s) => /big\s+Migrating/.test(s) && /MiB\/s vs \d/.test(s)) ?? '';
  expect(moving).toMatch(/#\d+ 1\/\d max downtime \d+ ms/);
  expect(moving).toMatch(/≤ \d+ ms/);
  expect(await env.runningOn('big')).toEqual(['node-b']);
});

test('not a terminal: plain lines, and a move that fails exits non-zero', async () => {
  const r = await plugin(['move', 'doomed', '--to', 'node-b', '--watch']);
  expect(r.code).toBe(1);
  expect(r.stdout).not.toContain('\x1b[');
  const lines = r.stdout.trim().split('\n');
  expect(lines[0]).toMatch(/^moverequest\.vmove\.dev\/doomed-\w+ created$/);
  expect(lines.some((l) => /^\d{4}-\d\d-\d\dT\S+ doomed-\w+ Failed node-a->node-b .*\| Failed: /.test(l))).toBe(true);
  expect(lines[lines.length - 1]).toBe('1 move: 1 Failed. All ended.');
  expect(await env.runningOn('doomed')).toEqual(['node-a']);
});

test('cancel a move in flight, watch it end Cancelled (exit 1), and read its history with durations', async () => {
  const created = await plugin(['move', 'slow', '--to', 'node-a']);
  expect(created.code).toBe(0);
  const name = /moverequest\.vmove\.dev\/(\S+) created/.exec(created.stdout)![1]!;
  await env.waitFor('slow to be migrating', async () => {
    const mr = await env.move(name);
    return mr?.status?.phase === 'Migrating' && (mr.status.progress?.memoryProcessedBytes ?? 0) > 0;
  });
  const cancel = await plugin(['cancel', name]);
  expect(cancel).toEqual({ code: 0, stdout: `moverequest.vmove.dev/${name} cancel requested\n`, stderr: '' });
  const watched = await plugin(['watch', name]);
  expect(watched.code).toBe(1);
  expect(watched.stdout.trim().split('\n').pop()).toBe('1 move: 1 Cancelled. All ended.');

  const h = await plugin(['history', name, '-n', 'default']);
  expect(h.code).toBe(0);
  const lines = h.stdout.trim().split('\n');
  expect(lines[0]).toBe(`MoveRequest default/${name} (VM slow): Cancelled, Live node-c → node-a`);
  expect(lines[2]).toMatch(/^PHASE\s+ATTEMPT\s+STARTED\s+DURATION\s+MESSAGE$/);
  const phases = lines.slice(3).filter((l) => /^[A-Z]\w+\s+\d+\s+\d{4}-/.test(l)).map((l) => l.split(/\s+/)[0]);
  expect(phases).toEqual(expect.arrayContaining(['Pending', 'Scheduling', 'PreparingTarget', 'Migrating', 'RollingBack', 'Cancelled']));
  expect(phases[phases.length - 1]).toBe('Cancelled');
  // Every entry ended: a duration each, none open ("+"), and the total.
  for (const l of lines.slice(3).filter((x) => /^[A-Z]\w+\s+\d+\s+\d{4}-/.test(x))) expect(l).toMatch(/Z\s+(\d+ms|\d+\.\d+s|\d+m\d\ds|\d+s)(\s|$)/);
  expect(lines[lines.length - 1]).toMatch(/^total (\d+ms|\d+\.\d+s|\d+m\d\ds|\d+s)$/);
  // `kubectl vmove cancel` on a move that ended says so, and changes nothing.
  expect(await plugin(['cancel', name])).toEqual({ code: 0, stdout: `moverequest.vmove.dev/${name} already ended Cancelled: nothing to cancel\n`, stderr: '' });
  expect(await env.runningOn('slow')).toEqual(['node-c']);
});

test('evacuate --dry-run prints the plan the controller made and moves nothing', async () => {
  const r = await plugin(['evacuate', 'node-a', '--dry-run']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const name = /hostevacuation\.vmove\.dev\/(node-a-plan-\w+) created \(dry run: nothing moves\)/.exec(r.stdout)?.[1];
  expect(name).toBeDefined();
  expect(r.stdout).toContain('Plan to evacuate node-a (host Alive, mode Auto): 1 VM, 1 with a target');
  expect(r.stdout).toMatch(/\n1\s+default\/doomed\s+LiveMove\s+LiveMigrateIfPossible\s+node-[bc]\s+Live\s+SharedStorage\s/);
  const e = await env.api.get<HostEvacuation>(vmovePath('hostevacuations', { name: name! }));
  expect(e.status?.phase).toBe('Succeeded');
  const moves = await env.api.get<{ items: MoveRequest[] }>(vmovePath('moverequests', { namespace: 'default' }));
  expect(moves.items.filter((m) => m.metadata.labels?.['vmove.dev/evacuation'] === name)).toEqual([]);
  expect((await env.kubectl(['get', 'node', 'node-a', '-o', 'jsonpath={.spec.unschedulable}'])).stdout).toBe('');
});

test('evacuate --watch follows the moves the evacuation creates and exits 0 once it Succeeded', async () => {
  const r = await plugin(['evacuate', 'node-c', '--watch'], 240_000);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  const lines = r.stdout.trim().split('\n');
  const name = /^hostevacuation\.vmove\.dev\/(node-c-\w+) created$/.exec(lines[0]!)?.[1];
  expect(name).toBeDefined();
  // The evacuation's own line, then its move (named <evacuation>-<vm>-<n>) as it crosses.
  expect(lines.some((l) => new RegExp(`^\\S+ HostEvacuation ${name} of node-c: Evacuating`).test(l))).toBe(true);
  expect(lines.some((l) => new RegExp(`^\\S+ default/${name}-slow-1 Migrating node-c->node-[ab] \\d+% sent=`).test(l))).toBe(true);
  expect(lines[lines.length - 1]).toMatch(new RegExp(`^HostEvacuation ${name} of node-c: Succeeded .* — 1 move: 1 Succeeded\\. All ended: Succeeded\\.$`));
  expect((await env.runningOn('slow'))[0]).toMatch(/node-[ab]/);
});

test('the MoveRequest it creates is the one a manifest with the same fields gives', async () => {
  const r = await plugin(['move', 'doomed', '--selector', 'kubernetes.io/hostname=node-c', '--mode', 'Cold', '--cpu', '2', '--memory', '512Mi']);
  expect(r.code).toBe(0);
  const name = /moverequest\.vmove\.dev\/(\S+) created/.exec(r.stdout)![1]!;
  const created = (await env.move(name))!;
  const manifest = moveYaml('same-as-plugin', 'doomed', { mode: 'Cold', target: { nodeSelector: { 'kubernetes.io/hostname': 'node-c' } }, resources: { cpu: 2, memory: '512Mi' } });
  const dry = await env.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], manifest);
  expect(dry.code).toBe(0);
  expect(created.spec).toEqual((JSON.parse(dry.stdout) as MoveRequest).spec);
  expect((created.metadata as { generateName?: string }).generateName).toBe('doomed-');
  await plugin(['cancel', name]);
  await env.waitForMove(name, ['Succeeded', 'Failed', 'Cancelled'], 120_000);
});

test.each([
  [['move', 'ghost', '--to', 'node-b'], 'kubectl vmove: VirtualMachine "ghost" not found in namespace "default"'],
  [['move', 'big', '--to', 'node-z'], 'kubectl vmove: node "node-z" not found'],
  [['move', 'big', '--to', 'node-a', '--selector', 'zone=west'], 'kubectl vmove: move: --to and --selector exclude each other (a node, or labels a node must have)'],
  [['move', 'big', '--fast'], "kubectl vmove: move: Unknown option '--fast'"],
  [['move', 'big', '--memory', '16Mi'], /^kubectl vmove: .*spec\.resources\.memory must be at least 64Mi, got 16Mi/],
  [['cancel', 'no-such-move'], 'kubectl vmove: MoveRequest "no-such-move" not found in namespace "default"'],
  [['history', 'no-such-move', '-n', 'elsewhere'], 'kubectl vmove: MoveRequest "no-such-move" not found in namespace "elsewhere"'],
  [['watch', 'no-such-move'], 'kubectl vmove: MoveRequest "no-such-move" not found in namespace "default"'],
  [['evacuate', 'node-z', '--dry-run'], 'kubectl vmove: node "node-z" not found'],
  [['--context', 'nowhere', 'watch'], /^kubectl vmove: context "nowhere" not found in the kubeconfig \(have: /],
])('bad input %j: one line on stderr, exit code 2', async (args, message) => {
  const r = await plugin(args);
  expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: '' });
  expect(r.stderr.split('\n')).toHaveLength(2);
  if (typeof message === 'string') expect(r.stderr.trim()).toBe(message);
  else expect(r.stderr.trim()).toMatch(message);
});
