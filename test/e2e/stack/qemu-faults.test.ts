// Faults on real guests (issue 15, item 4): the whole stack with the qemu driver (TCG), and in
// each test one thing breaks in the middle of a live move — an agent or the controller is
// SIGKILLed, the target's QEMU dies, the migration's TCP connection is cut, the target's disk
// fills up. Each test then checks, as the user and as the guest see it, that the VM ends Running
// on exactly one host, that its guest went on heartbeating without a restart (GuestReady True
// with the readySince it had before, and its own console counting on without a gap), and that
// the MoveRequest's phase and history say what happened. A killed agent or controller is started
// again by the test, as its DaemonSet or Deployment would. The moment of each fault is taken
// from the agents' operation records: an agent records an operation before it acts on it, and
// the controller writes the move's phase before it sends the step, so the record of a phase's
// step appearing means the move is in that phase (each test also reads the phase back).
// Guests are the small test guest (256 MiB, 1 vCPU); the tests run in order on one environment.
import { mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { GUEST_READY, type MoveRequest } from '../../../src/api/types';
import { diskPath } from '../../../src/drivers/common/paths';
import { continuousHeartbeats, historyText, parseConsole, phases, RealStack, TERMINAL, waitHeartbeat } from '../../support/e2eFleet';
import { cutConnections, isRoot, mountTmpfs, onOperationRecorded, operationRecord, portOf, qemuPid } from '../../support/faults';
import { moveYaml, vmYaml } from '../../support/vmoveEnv';

jest.setTimeout(300_000);

// A stable controller identity: a restarted controller takes its lease back at once, as a
// restarted container of the same pod does, instead of waiting for it to expire.
const CONTROLLER_ARGS = ['--identity', 'faults-test-controller'];
const LIVE_PHASES = ['Pending', 'Scheduling', 'PreparingTarget', 'Migrating', 'SwitchingOver', 'Verifying', 'CleaningUp', 'Succeeded'];

let stack: RealStack;
const started = Date.now();
/** The fault matrix, printed at the end: case → phase at the fault, end, where the VM runs, heartbeat, time. */
const matrix: string[] = [];

beforeAll(async () => {
  if (!isRoot()) throw new Error('these tests mount a tmpfs and reset sockets: run them as root');
  stack = await RealStack.start('qemu', ['node-a', 'node-b', 'node-c'], { controllerArgs: CONTROLLER_ARGS });
  // web: shared disk; db: local disk (block migration). Both boot at once.
  await Promise.all([
    stack.createVm('web', 'node-a', { storage: 'SharedFile', kernelArgs: 'vmove.disk_counter=1' }),
    stack.createVm('db', 'node-a', { storage: 'Local', kernelArgs: 'vmove.disk_counter=1' }),
  ]);
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  console.log(`e2e faults (qemu): ${((Date.now() - started) / 1000).toFixed(0)} s\n${matrix.join('\n')}`);
}, 120_000);

const env = () => stack.env;

/** When the guest was first seen ready in its current run; waits until the VM reports it ready on `node`. */
async function guestReadyOn(vm: string, node: string): Promise<string> {
  const v = await env().waitFor(`${vm}'s guest reported ready on ${node}`, async () => {
    const v = await env().vm(vm);
    const ready = v?.status?.conditions?.find((c) => c.type === GUEST_READY);
    return v?.status?.nodeName === node && !v.status.moveRef && ready?.status === 'True' && v.status.guest?.readySince ? v : undefined;
  }, 90_000);
  return v.status!.guest!.readySince!;
}

/** The fault landed where it was meant to: the phase read back right after it. */
async function phaseNow(name: string): Promise<string | undefined> {
  return (await env().move(name))?.status?.phase;
}

async function uidOf(name: string): Promise<string> {
  return env().waitFor(`${name} to have a uid`, async () => (await env().move(name))?.metadata.uid);
}

/** Record a row of the fault matrix. */
function row(c: string, mr: MoveRequest, faultPhase: string | undefined, endedOn: string, heartbeat: boolean, t0: number): void {
  const took = ((Date.now() - t0) / 1000).toFixed(0);
  matrix.push(`${c} | fault in ${faultPhase} | ${phases(mr).join(' → ')} (attempt ${mr.status?.attempt}) | runs on ${endedOn} | heartbeat went on: ${heartbeat ? 'yes' : 'no'} | ${took} s`);
}

/**
 * What the guest printed on one host from now on, kept while a move runs (the source's driver
 * deletes the VM's files once it has left).
 */
async function recordConsole(node: string, vm: string) {
  const c = stack.guest(node, vm).setMark();
  await waitHeartbeat(env(), node, vm, c.last()?.n ?? 0);
  return { console: c, recording: c.record() };
}

test('(a) the source agent is SIGKILLed during Migrating and restarted: QEMU migrates on, the new agent re-attaches and the move finishes on the target', async () => {
  const t0 = Date.now();
  const readySince = await guestReadyOn('web', 'node-a');
  const { recording } = await recordConsole('node-a', 'web');
  const target = stack.guest('node-b', 'web').setMark();
  // 8 MiB/s: the first pass takes seconds, so the kill lands mid-stream.
  await env().apply(moveYaml('web-a', 'web', { mode: 'Live', target: { nodeName: 'node-b' }, policy: { bandwidthMiBps: 8 } }));
  await stack.migrating('web-a');
  await env().fleet.kill(env().fleet.agents.get('node-a'));
  const faultPhase = await phaseNow('web-a');
  expect(faultPhase).toBe('Migrating');
  await env().fleet.restartAgent('node-a');
  const mr = await env().waitForMove('web-a', TERMINAL, 240_000);
  const onSource = recording.stop();
  stack.ended(mr, 'Succeeded');
  stack.wentThrough(mr, LIVE_PHASES);
  expect(mr.status?.attempt).toBe(1);
  expect(historyText(mr).join('\n')).toMatch(/Verifying: guest heartbeat \d+ goes on from \d+ on the source/);
  await stack.ranOnAcross(onSource, target, 'web');
  await stack.runsOnlyOn('web', 'node-b');
  expect(await stack.holds('node-a', 'web')).toBe(false);
  expect(await guestReadyOn('web', 'node-b')).toBe(readySince);
  row('(a) source agent SIGKILL in Migrating', mr, faultPhase, 'node-b (target)', true, t0);
});

test('(b) the source agent is SIGKILLed during SwitchingOver and restarted: the target takes over, the clean-up of the source waits for its agent', async () => {
  const t0 = Date.now();
  const readySince = await guestReadyOn('web', 'node-b');
  const { recording } = await recordConsole('node-b', 'web');
  const target = stack.guest('node-a', 'web').setMark();
  await env().apply(moveYaml('web-b', 'web', { mode: 'Live', target: { nodeName: 'node-a' } }));
  const uid = await uidOf('web-b');
  let faultPhase: string | undefined;
  // The switch-over's step (completeIncoming) runs on the target; the source's agent dies as the target records it.
  await onOperationRecorded(env(), 'node-a', `${uid}.1.switching-over`, () => {
    env().fleet.agents.get('node-b')!.child.kill('SIGKILL');
  });
  faultPhase = await phaseNow('web-b');
  await env().fleet.agents.get('node-b')!.exited;
  expect(faultPhase).toBe('SwitchingOver');
  await env().fleet.restartAgent('node-b');
  const mr = await env().waitForMove('web-b', TERMINAL, 240_000);
  const onSource = recording.stop();
  stack.ended(mr, 'Succeeded');
  stack.wentThrough(mr, LIVE_PHASES);
  await stack.ranOnAcross(onSource, target, 'web');
  await stack.runsOnlyOn('web', 'node-a');
  expect(await stack.holds('node-b', 'web')).toBe(false);
  expect(await guestReadyOn('web', 'node-a')).toBe(readySince);
  row('(b) source agent SIGKILL in SwitchingOver', mr, faultPhase, 'node-a (target)', true, t0);
});

test('(c) the target QEMU is SIGKILLed during Verifying: the move rolls back and the paused source (local disk) resumes where it was', async () => {
  const t0 = Date.now();
  const readySince = await guestReadyOn('db', 'node-a');
  const { console: source, recording } = await recordConsole('node-a', 'db');
  await env().apply(moveYaml('db-c', 'db', { mode: 'Live', target: { nodeName: 'node-b' } }));
  const uid = await uidOf('db-c');
  let killed: number | undefined;
  await onOperationRecorded(env(), 'node-b', `${uid}.1.verifying`, () => {
    killed = qemuPid(env(), 'node-b', 'default_db');
    process.kill(killed, 'SIGKILL');
  });
  const faultPhase = await phaseNow('db-c');
  expect(faultPhase).toBe('Verifying');
  const mr = await env().waitForMove('db-c', TERMINAL, 240_000);
  recording.stop();
  stack.ended(mr, 'Failed');
  expect(mr.status).toMatchObject({ moveType: 'Live', variant: 'BlockMigration' });
  stack.wentThrough(mr, ['Pending', 'Scheduling', 'PreparingTarget', 'Migrating', 'SwitchingOver', 'Verifying', 'RollingBack', 'Failed']);
  const history = historyText(mr).join('\n');
  expect(history).toMatch(/rolling back: .*Verifying.*expected Running/);
  expect(mr.status?.conditions?.find((c) => c.type === 'RolledBack')).toMatchObject({ status: 'True' });
  await stack.runsOnlyOn('db', 'node-a');
  expect(await stack.holds('node-b', 'db')).toBe(false);
  // The guest paused on node-a for the switch-over and resumed there: no boot, no gap.
  await waitHeartbeat(env(), 'node-a', 'db', source.last()!.n);
  expect(parseConsole(source.sinceMark()).boots).toEqual([]);
  continuousHeartbeats([source.sinceMark()]);
  expect(await guestReadyOn('db', 'node-a')).toBe(readySince);
  row(`(c) target QEMU SIGKILL in Verifying (pid ${killed})`, mr, faultPhase, 'node-a (source)', true, t0);
});

test('(d) the migration stream is cut mid-transfer: the attempt rolls back, the guest runs on at the source, and the next attempt moves it', async () => {
  const t0 = Date.now();
  const readySince = await guestReadyOn('web', 'node-a');
  const { recording } = await recordConsole('node-a', 'web');
  const target = stack.guest('node-b', 'web').setMark();
  await env().apply(moveYaml('web-d', 'web', { mode: 'Live', target: { nodeName: 'node-b' }, policy: { bandwidthMiBps: 8 } }));
  const uid = await uidOf('web-d');
  await stack.migrating('web-d');
  const endpoint = operationRecord(env(), 'node-b', `${uid}.1.preparing-target`)?.status.endpoint;
  expect(endpoint?.migrationUri).toMatch(/^tcp:/);
  const cut = cutConnections([portOf(endpoint!.migrationUri)]);
  const faultPhase = await phaseNow('web-d');
  expect(faultPhase).toBe('Migrating');
  // ss lists the connection it reset: the source QEMU's, to the target's migration port.
  expect(cut).toContain(`:${portOf(endpoint!.migrationUri)}`);
  const mr = await env().waitForMove('web-d', TERMINAL, 240_000);
  const onSource = recording.stop();
  stack.ended(mr, 'Succeeded');
  // On a mismatch the message shows why each attempt ended.
  expect({ attempt: mr.status?.attempt, history: historyText(mr) }).toMatchObject({ attempt: 2 });
  const history = historyText(mr).join('\n');
  expect(history).toMatch(/rolling back: .*Migrating.*migration failed/);
  expect(history).toMatch(/attempt 2 starts after/);
  expect(phases(mr)).toEqual(['Pending', 'Scheduling', 'PreparingTarget', 'Migrating', 'RollingBack', 'SwitchingOver', 'Verifying', 'CleaningUp', 'Succeeded']);
  // One life across both attempts: the source never stopped, the target got it on the second.
  await stack.ranOnAcross(onSource, target, 'web');
  await stack.runsOnlyOn('web', 'node-b');
  expect(await stack.holds('node-a', 'web')).toBe(false);
  expect(await guestReadyOn('web', 'node-b')).toBe(readySince);
  row('(d) migration TCP connection reset in Migrating', mr, faultPhase, 'node-b (target, attempt 2)', true, t0);
});

test('(e) the controller is SIGKILLed during RollingBack and restarted: the new one finishes the rollback', async () => {
  const t0 = Date.now();
  const readySince = await guestReadyOn('web', 'node-b');
  const { console: source, recording } = await recordConsole('node-b', 'web');
  await env().apply(moveYaml('web-e', 'web', { mode: 'Live', target: { nodeName: 'node-a' }, policy: { bandwidthMiBps: 8 } }));
  const uid = await uidOf('web-e');
  await stack.migrating('web-e');
  // A cancel mid-migration rolls back: abort the migration, resume the source, remove the target.
  // The controller dies as the source's agent records the first of those steps.
  const dying = onOperationRecorded(env(), 'node-b', `${uid}.1.rollback-abort-migration-0`, () => {
    env().fleet.controller!.child.kill('SIGKILL');
  });
  expect((await env().kubectl(['patch', 'moverequest', 'web-e', '--type=merge', '-p', '{"spec":{"cancel":true}}'])).code).toBe(0);
  await dying;
  await env().fleet.controller!.exited;
  // Nobody writes the status now: what it says is where the move was when the controller died.
  const faultPhase = await phaseNow('web-e');
  expect(faultPhase).toBe('RollingBack');
  env().fleet.startController(CONTROLLER_ARGS);
  const mr = await env().waitForMove('web-e', TERMINAL, 240_000);
  recording.stop();
  stack.ended(mr, 'Cancelled');
  stack.wentThrough(mr, ['Pending', 'Scheduling', 'PreparingTarget', 'Migrating', 'RollingBack', 'Cancelled']);
  expect(historyText(mr).join('\n')).toContain('cancel requested during Migrating: rolling back');
  await stack.runsOnlyOn('web', 'node-b');
  expect(await stack.holds('node-a', 'web')).toBe(false);
  await waitHeartbeat(env(), 'node-b', 'web', source.last()!.n);
  expect(parseConsole(source.sinceMark()).boots).toEqual([]);
  continuousHeartbeats([source.sinceMark()]);
  expect(await guestReadyOn('web', 'node-b')).toBe(readySince);
  row('(e) controller SIGKILL in RollingBack', mr, faultPhase, 'node-b (source)', true, t0);
});

test('(f) the target disk fills up during a block migration: the move rolls back with the reason, the guest runs on at the source', async () => {
  const t0 = Date.now();
  // bulk: a local disk holding 48 MiB of its own data (written while it is stopped, away from
  // the guest's counter in sector 0), which the mirror must copy; node-c's local folder is a
  // 16 MiB tmpfs.
  await env().apply(vmYaml('bulk', { node: 'node-a', storage: 'Local', running: false, kernelArgs: 'vmove.disk_counter=1' }));
  const nodeA = env().fleet.nodes.get('node-a')!.host;
  const disk = diskPath(nodeA, 'default_bulk', 'root', 'Local');
  await env().waitFor('bulk defined with its disk on node-a', async () => (await env().vm('bulk'))?.status?.phase === 'Stopped' && (await stack.holds('node-a', 'bulk')));
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 64M 48M', disk]);
  expect((await env().kubectl(['patch', 'virtualmachine', 'bulk', '--type=merge', '-p', '{"spec":{"running":true}}'])).code).toBe(0);
  await env().waitFor('bulk running on node-a', async () => (await env().vm('bulk'))?.status?.phase === 'Running', 120_000);
  await waitHeartbeat(env(), 'node-a', 'bulk', 2);
  const readySince = await guestReadyOn('bulk', 'node-a');
  const local = env().fleet.nodes.get('node-c')!.host.localDir;
  mkdirSync(local, { recursive: true });
  const tmpfs = mountTmpfs(local, '16m');
  try {
    const { console: source, recording } = await recordConsole('node-a', 'bulk');
    const mr = await stack.move('bulk-f', 'bulk', { mode: 'Live', target: { nodeName: 'node-c' }, policy: { maxAttempts: 1 } });
    recording.stop();
    stack.ended(mr, 'Failed');
    expect(mr.status).toMatchObject({ moveType: 'Live', variant: 'BlockMigration', targetNode: 'node-c' });
    const history = historyText(mr).join('\n');
    expect(history).toMatch(/rolling back: .*Migrating.*No space left on device/i);
    expect(mr.status?.conditions?.find((c) => c.type === 'RolledBack')).toMatchObject({ status: 'True' });
    const faultPhase = phases(mr).at(phases(mr).indexOf('RollingBack') - 1);
    await stack.runsOnlyOn('bulk', 'node-a');
    expect(await stack.holds('node-c', 'bulk')).toBe(false);
    await waitHeartbeat(env(), 'node-a', 'bulk', source.last()!.n);
    expect(parseConsole(source.sinceMark()).boots).toEqual([]);
    continuousHeartbeats([source.sinceMark()]);
    expect(await guestReadyOn('bulk', 'node-a')).toBe(readySince);
    row('(f) target disk full (16 MiB tmpfs) in block migration', mr, faultPhase, 'node-a (source)', true, t0);
  } finally {
    tmpfs.unmount();
  }
});
