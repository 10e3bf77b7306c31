// A live move holds the target to what the source showed of the guest, no more: a guest that
// heartbeated must go on past its last heartbeat within the live window; one that was still
// booting is verified by what can be seen, within the boot window — and history says which.
import { VERIFY_WINDOW_MS, type GuestBaseline } from '../../../src/machines';
import { MoveDriver } from './drive';
import { scenario, SOURCE } from './scenarios';

const liveMove = () => new MoveDriver(scenario({ type: 'Live', variant: 'BlockMigration', vmRunning: true }));

function toVerifying(d: MoveDriver, sourceGuest: GuestBaseline, migrated: { guestHeartbeat?: number }): MoveDriver {
  d.send({ type: 'START', sourceReachable: true, sourceGuest });
  d.place();
  d.succeed(); // PreparingTarget
  d.succeed(migrated); // Migrating: what the source showed at hand-over
  d.succeed(); // SwitchingOver
  expect(d.phase).toBe('Verifying');
  return d;
}

test('a guest ready on the source: the target must heartbeat past its last heartbeat there, within the live window', () => {
  const d = toVerifying(liveMove(), { state: 'Ready', reason: 'Heartbeat', heartbeat: 40, heartbeatTime: '2030-01-01T00:00:00Z' }, { guestHeartbeat: 42 });
  expect(d.step?.request).toEqual({ kind: 'verify', windowMs: VERIFY_WINDOW_MS.afterLiveMigration, expectRunning: true, heartbeatAbove: 42 });
  expect(d.notes[0]?.message).toBe(
    `the guest on ${SOURCE} is ready (heartbeat 40 at 2030-01-01T00:00:00Z): after the switch-over it must heartbeat on the target past its last heartbeat on the source within 15 s`,
  );
});

test('a guest still booting on the source: verified by what can be seen within the boot window, not by a heartbeat it never had', () => {
  const d = toVerifying(liveMove(), { state: 'NotReady', reason: 'Booting', waitedSeconds: 120 }, {});
  expect(d.step?.request).toEqual({ kind: 'verify', windowMs: VERIFY_WINDOW_MS.afterBoot, expectRunning: true, acceptConsole: true });
  expect(d.notes[0]?.message).toMatch(new RegExp(`^the move waited 120 s for it to boot; the guest on ${SOURCE} is still booting: after the switch-over the target is verified by what can be seen`));
  d.send({ type: 'STEP_SUCCEEDED', step: d.step!.key, message: 'the guest, not ready on the source, runs here: its console output grows (900 → 1400 bytes)' });
  expect(d.phase).toBe('CleaningUp');
  // What the verification found is a line of history.
  expect(d.lastNote).toBe('Verifying: the guest, not ready on the source, runs here: its console output grows (900 → 1400 bytes)');
});

test('the hand-over decides: a guest that was ready at the start but had no heartbeat when it left (it restarted) is not held to one', () => {
  const d = toVerifying(liveMove(), { state: 'Ready', reason: 'Heartbeat', heartbeat: 40 }, {});
  expect(d.step?.request).toMatchObject({ windowMs: VERIFY_WINDOW_MS.afterBoot, acceptConsole: true });
  expect(d.step?.request).not.toHaveProperty('heartbeatAbove');
});

test('a retry records the source afresh: the baseline is the attempt\'s own', () => {
  const d = toVerifying(liveMove(), { state: 'NotReady', reason: 'Booting' }, {});
  d.fail(true, 'guest made no progress');
  while (d.phase === 'RollingBack') d.succeed();
  expect(d.phase).toBe('Pending');
  expect(d.ctx.sourceGuest).toBeUndefined();
  d.now = Date.parse(d.ctx.notBefore!);
  d.send({ type: 'START', sourceReachable: true, sourceGuest: { state: 'Ready', reason: 'Heartbeat', heartbeat: 90 } });
  expect(d.ctx.sourceGuest).toEqual({ state: 'Ready', reason: 'Heartbeat', heartbeat: 90 });
});

test('a move that says nothing of the guest (cold, or a stopped VM) records no line for it', () => {
  const d = new MoveDriver(scenario({ type: 'Cold', variant: 'SharedStorage', vmRunning: true }));
  expect(d.send({ type: 'START', sourceReachable: true })).toEqual([]);
});
