// Retries: a transient failure before the point of no return rolls back and tries again later,
// with the wait doubling each attempt; a permanent failure, or the last attempt, ends Failed.
import { MoveDriver } from './drive';
import { scenario, SOURCE } from './scenarios';

const live = (maxAttempts: number) => new MoveDriver(scenario({ type: 'Live', variant: 'SharedStorage', vmRunning: true, policy: { maxAttempts } }));

/** Let the rollback's steps succeed. */
const finishRollback = (d: MoveDriver) => {
  while (d.phase === 'RollingBack') d.succeed();
  return d;
};

test('a transient failure before the point of no return rolls back, then tries again after a wait', () => {
  const d = live(3).start().place().succeed();
  expect(d.phase).toBe('Migrating');
  const failedAt = d.now;
  finishRollback(d.fail(true));
  expect(d.phase).toBe('Pending');
  expect(d.ctx.attempt).toBe(2);
  expect(d.ctx.notBefore).toBe(new Date(failedAt + 5_000).toISOString());
  expect(d.runningOn).toEqual([SOURCE]);

  // START before then is refused; at that time it is taken, and steps carry the new attempt.
  d.wait(4_999).start();
  expect(d.phase).toBe('Pending');
  d.wait(1).start().place();
  expect(d.step?.key).toBe('2.preparing-target');
  d.run();
  expect(d.phase).toBe('Succeeded');
});

test('the wait doubles with each attempt', () => {
  const d = live(4).start().place();
  const waits: number[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    const failedAt = d.now;
    finishRollback(d.fail(true));
    waits.push(Date.parse(d.ctx.notBefore!) - failedAt);
    d.wait(waits.at(-1)!).start().place();
  }
  expect(waits).toEqual([5_000, 10_000, 20_000]);
  expect(d.ctx.attempt).toBe(4);
});

test('a transient failure on the last attempt rolls back to Failed', () => {
  const d = live(2).start().place();
  finishRollback(d.fail(true));
  d.wait(5_000).start().place();
  finishRollback(d.fail(true));
  expect(d.phase).toBe('Failed');
  expect(d.ctx.attempt).toBe(2);
  expect(d.lastNote).toBe('rolled back after: PreparingTarget: connection reset');
  expect(d.runningOn).toEqual([SOURCE]);
});

test('a permanent failure rolls back to Failed at once, attempts left or not', () => {
  const d = live(3).start().place().succeed();
  finishRollback(d.fail(false, 'incompatible CPU'));
  expect(d.phase).toBe('Failed');
  expect(d.ctx.attempt).toBe(1);
  expect(d.ctx.failure).toBe('Migrating: incompatible CPU');
});

test("results of an earlier attempt's steps are ignored", () => {
  const d = live(3).start().place();
  finishRollback(d.fail(true));
  d.wait(5_000).start().place();
  expect(d.step?.key).toBe('2.preparing-target');
  // Attempt 1's prepare-incoming finally answers: it is not attempt 2's.
  d.send({ type: 'STEP_SUCCEEDED', step: '1.preparing-target', endpoint: { migrationUri: 'tcp:stale:1' } });
  d.send({ type: 'STEP_FAILED', step: '1.preparing-target', message: 'late', transient: false });
  d.send({ type: 'PROGRESS', step: '1.preparing-target', processedBytes: 1, remainingBytes: 1, iteration: 1 });
  expect(d.phase).toBe('PreparingTarget');
  expect(d.ctx.endpoint).toBeUndefined();
});

test("the target's verification of a live move asks the guest to go on from its heartbeat on the source; a retry forgets it", () => {
  const d = live(3).start().place().succeed().succeed({ guestHeartbeat: 57 }).succeed();
  expect(d.phase).toBe('Verifying');
  expect(d.step?.request).toMatchObject({ kind: 'verify', heartbeatAbove: 57 });
  d.fail(true, 'the guest restarted here: heartbeat 2, it was at 57 on the source');
  finishRollback(d);
  d.wait(60_000).start().place().succeed().succeed().succeed();
  expect(d.step?.key).toBe('2.verifying');
  expect(d.step?.request).not.toHaveProperty('heartbeatAbove');
});

test('a cancel while rolling back for a retry ends Cancelled instead', () => {
  const d = live(3).start().place().succeed();
  d.fail(true);
  expect(d.ctx.rollback?.outcome).toBe('Retry');
  d.cancel();
  finishRollback(d);
  expect(d.phase).toBe('Cancelled');
  expect(d.runningOn).toEqual([SOURCE]);
});

test('a rollback step that fails for good ends the move Failed: no retry from a VM in an unknown state', () => {
  const d = live(3).start().place().succeed().succeed().succeed();
  expect(d.phase).toBe('Verifying');
  d.fail(true); // the VM runs on the target; roll back: remove it there, boot the source from its disk
  expect(d.ctx.rollback?.outcome).toBe('Retry');
  d.succeed(); // remove-target
  d.fail(false, 'no such domain'); // restart-source
  expect(d.phase).toBe('Failed');
  expect(d.runningOn).toEqual([]);
  expect(d.lastNote).toBe(
    'failed: Verifying: connection reset; the VM was not started again on node-a; the rollback is incomplete: restart-source failed (no such domain)',
  );
});
