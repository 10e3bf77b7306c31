// MoveRequest.status as moveStatus writes it along real machine runs, and what the kstatus library
// (hack/kstatus: sigs.k8s.io/cli-utils, as Flux uses it) makes of it: in progress while the move is
// under way, Current once it Succeeded, Failed at once when it failed or was cancelled — so a Flux
// health check or a kstatus wait ends on a failure instead of timing out.
import type { MoveProgress, MoveRequest, MoveRequestStatus } from '../../../../src/api/types';
import { endedWithoutMove, moveStatus, waitingWithoutMove } from '../../../../src/controller/moverequest/status';
import { TOOL_BUILD_TIMEOUT_MS, goToolPath } from '../../../support/hackTools';
import { kstatusOf, type KstatusVerdict } from '../../../support/kstatus';
import { MoveDriver } from '../../machines/drive';
import { scenario } from '../../machines/scenarios';

const MiB = 1024 ** 2;

beforeAll(() => {
  goToolPath('kstatus');
}, TOOL_BUILD_TIMEOUT_MS);

const object = (status: MoveRequestStatus, generation = 1): MoveRequest => ({
  apiVersion: 'vmove.dev/v1alpha1',
  kind: 'MoveRequest',
  metadata: { name: 'web-move', namespace: 'default', generation, uid: 'u1' },
  spec: { vmName: 'web' },
  status,
});

/** Runs a live move and records, after each event, the status and kstatus's verdict on it. */
function liveRun(end: (d: MoveDriver) => void): { status: MoveRequestStatus; verdict: KstatusVerdict }[] {
  const d = new MoveDriver(scenario({ type: 'Live', variant: 'SharedStorage', vmRunning: true }));
  const statuses: MoveRequestStatus[] = [];
  let prev: MoveRequestStatus | undefined;
  const record = (progress?: MoveProgress) => {
    prev = moveStatus(prev, d.move, { now: new Date(d.now).toISOString(), generation: 1, notes: d.notes.splice(0), progress });
    statuses.push(prev);
  };
  record();
  d.start();
  record();
  d.place();
  record();
  d.succeed(); // prepared the target: Migrating
  record();
  d.progress({ processedBytes: 512 * MiB, remainingBytes: 1536 * MiB, iteration: 1 });
  record({ memoryTotalBytes: 2048 * MiB, memoryProcessedBytes: 512 * MiB, memoryRemainingBytes: 1536 * MiB, iteration: 1 });
  end(d);
  record();
  return statuses.map((s) => ({ status: s, verdict: kstatusOf([object(s)])[0]! }));
}

const cond = (s: MoveRequestStatus, type: string) => s.conditions?.find((c) => c.type === type);

test('a move under way is InProgress with what it does; once Succeeded it is Current', () => {
  const run = liveRun((d) => d.run());
  const last = run[run.length - 1]!;
  for (const r of run.slice(0, -1)) {
    expect(r.verdict.status).toBe('InProgress');
    expect(cond(r.status, 'Reconciling')?.status).toBe('True');
    expect(cond(r.status, 'Stalled')?.status).toBe('False');
  }
  const migrating = run.find((r) => r.status.phase === 'Migrating' && r.status.progress?.percent)!;
  expect(migrating.verdict.message).toBe('Migrating: 25% sent, node-a → node-b');
  expect(last.status.phase).toBe('Succeeded');
  expect(last.verdict).toMatchObject({ status: 'Current', message: 'Resource is Ready' });
  expect(cond(last.status, 'Reconciling')).toMatchObject({ status: 'False', reason: 'Succeeded' });
  expect(last.status.observedGeneration).toBe(1);
});

test('a failed move is Failed at once, with the failure as the message', () => {
  const run = liveRun((d) => {
    d.fail(false, 'disk full');
    while (d.phase === 'RollingBack') {
      expect(kstatusOf([object(moveStatus(undefined, d.move, { now: new Date(d.now).toISOString(), generation: 1, notes: [] }))])[0]!.status).toBe('InProgress');
      d.succeed();
    }
  });
  const last = run[run.length - 1]!;
  expect(last.status.phase).toBe('Failed');
  expect(last.verdict).toEqual(expect.objectContaining({ status: 'Failed', message: 'Migrating: disk full' }));
  expect(cond(last.status, 'Stalled')).toMatchObject({ status: 'True', reason: 'MoveFailed' });
});

test('a cancelled move is Failed for kstatus (it did not do what was asked) and says the VM stayed', () => {
  const run = liveRun((d) => {
    d.cancel();
    while (d.phase === 'RollingBack') d.succeed();
  });
  const last = run[run.length - 1]!;
  expect(last.status.phase).toBe('Cancelled');
  expect(last.verdict).toEqual(expect.objectContaining({ status: 'Failed', message: 'cancelled; the VM is where it was' }));
});

test('a request that waits before its move starts is InProgress with why; one that cannot start is Failed with why', () => {
  const waiting = waitingWithoutMove(undefined, 'WaitingForVM', 'VirtualMachine web is being moved by MoveRequest other; this request starts when that one ends', '2030-01-01T00:00:00.000Z', 1);
  const ended = endedWithoutMove(undefined, 'Failed', 'VMNotFound', 'VirtualMachine ghost does not exist in namespace default', '2030-01-01T00:00:00.000Z', 1);
  const [w, e] = kstatusOf([object(waiting), object(ended)]);
  expect(w).toMatchObject({ status: 'InProgress', message: 'VirtualMachine web is being moved by MoveRequest other; this request starts when that one ends' });
  expect(e).toMatchObject({ status: 'Failed', message: 'VirtualMachine ghost does not exist in namespace default' });
  expect(cond(ended, 'Stalled')?.reason).toBe('VMNotFound');
});

test('a spec change the controller has not seen yet is InProgress, whatever the conditions say', () => {
  const done = liveRun((d) => d.run()).pop()!.status;
  expect(kstatusOf([object(done, 2)])[0]!.status).toBe('InProgress');
});
