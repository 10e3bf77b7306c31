// How the machines undo a move, cancel it, and meet lost hosts — written out for the cases that
// matter most to the VM (and that the exhaustive exploration once found wrong).
import { MoveDriver } from './drive';
import { scenario, SOURCE, TARGET } from './scenarios';

const drive = (type: 'Live' | 'Cold' | 'Rebuild' | 'ResizeInPlace', variant: Parameters<typeof scenario>[0]['variant'], vmRunning = true, sourceReachable = true) =>
  new MoveDriver(scenario({ type, variant, vmRunning, sourceReachable }));

const rollbackSteps = (d: MoveDriver) => d.ctx.rollback?.steps.map((s) => `${s.name}: ${s.request.kind} on ${s.role}`);

describe('a live move that fails', () => {
  test('before the switch-over: the source resumes first, then the target is cleared', () => {
    const d = drive('Live', 'SharedStorage').start().place().succeed();
    d.fail(false, 'connection refused');
    expect(rollbackSteps(d)).toEqual(['abort-migration: abortMigration on source', 'resume-source: resumeSource on source', 'remove-target: deleteVm on target']);
    while (d.phase === 'RollingBack') d.succeed();
    expect(d.phase).toBe('Failed');
    expect(d.lastNote).toBe('rolled back after: Migrating: connection refused');
    expect(d.runningOn).toEqual([SOURCE]);
    expect(d.world.hosts[TARGET]!.vm).toBeUndefined();
  });

  test('after the target ran: it is removed before the source boots from disk (its paused memory is stale)', () => {
    const d = drive('Live', 'SharedStorage').start().place().succeed().succeed().succeed();
    expect(d.phase).toBe('Verifying');
    d.fail(false, 'guest heartbeat stopped');
    expect(rollbackSteps(d)).toEqual(['remove-target: deleteVm on target', 'restart-source: startVm on source']);
    while (d.phase === 'RollingBack') d.succeed();
    expect(d.runningOn).toEqual([SOURCE]);
    expect(d.world.harm).toEqual([]); // no stale memory resumed
  });

  test('after the target ran on local disks alone: it is ended at once and the paused source resumes (its memory and disks are still one state)', () => {
    const d = drive('Live', 'BlockMigration').start().place().succeed().succeed().succeed();
    expect(d.phase).toBe('Verifying');
    d.fail(true, 'guest made no progress');
    expect(rollbackSteps(d)).toEqual(['remove-target: deleteVm on target', 'resume-source: resumeSource on source', 'restart-source: startVm on source']);
    expect(d.ctx.rollback?.steps[0]?.request).toMatchObject({ discard: true });
    d.succeed().succeed();
    // Resumed: the boot from disk that follows is only for a source that could not resume.
    expect(d.runningOn).toEqual([SOURCE]);
    expect(d.world.hosts[SOURCE]!.vm?.stateEpoch).toBeUndefined();
    d.succeed();
    expect(d.phase).toBe('Pending');
    expect(d.world.harm).toEqual([]);
  });

  test('a source that cannot resume boots from its disks instead', () => {
    const d = drive('Live', 'BlockMigration').start().place().succeed().succeed().succeed();
    d.fail(false, 'guest made no progress');
    d.succeed().fail(false, 'no QEMU process to resume');
    expect(d.step).toMatchObject({ role: 'source', request: { kind: 'startVm' } });
    d.succeed();
    expect(d.runningOn).toEqual([SOURCE]);
    expect(d.phase).toBe('Failed');
  });
});

describe('never two running copies', () => {
  const failedVerification = () => {
    const d = drive('Cold', 'SharedStorage').start().place();
    while (d.phase !== 'Verifying') d.succeed();
    return d.fail(false, 'guest heartbeat stopped');
  };

  test('when the target cannot be cleared, the source is not started', () => {
    const d = failedVerification();
    d.fail(false, 'libvirt: domain is locked');
    expect(d.phase).toBe('Failed');
    expect(d.runningOn).toEqual([TARGET]);
    expect(d.lastNote).toBe(
      'failed: Verifying: guest heartbeat stopped; the VM may still run on node-b, so it was not started again on node-a; ' +
        'the rollback is incomplete: remove-target failed (libvirt: domain is locked), restart-source left out (the VM may still run on the target)',
    );
  });

  test("when the target's agent is lost before it was cleared, the source is not started", () => {
    const d = failedVerification().lose('target');
    expect(d.phase).toBe('Failed');
    expect(d.runningOn).toEqual([TARGET]);
    expect(d.lastNote).toContain('the VM may still run on node-b, so it was not started again on node-a');
  });

  test("when the target's agent is lost after it was cleared, the source starts again", () => {
    const d = failedVerification().succeed().lose('target');
    expect(d.phase).toBe('RollingBack');
    d.succeed();
    expect(d.phase).toBe('Failed');
    expect(d.runningOn).toEqual([SOURCE]);
    expect(d.lastNote).toBe('rolled back after: Verifying: guest heartbeat stopped');
  });
});

describe('cancel', () => {
  test('before the point of no return it rolls back and ends Cancelled, the VM untouched', () => {
    const d = drive('Cold', 'DiskCopy').start().place().succeed().succeed();
    expect(d.phase).toBe('PreparingTarget');
    d.cancel();
    while (d.phase === 'RollingBack') d.succeed();
    expect(d.phase).toBe('Cancelled');
    expect(d.lastNote).toBe('rolled back: the VM is where it was');
    expect(d.runningOn).toEqual([SOURCE]);
    expect(d.world.hosts[SOURCE]!.vm!.live).toEqual(d.ctx.before);
    expect(d.world.hosts[TARGET]!.vm).toBeUndefined();
  });

  test('past it, the cancel is recorded and the move completes', () => {
    const d = drive('Live', 'BlockMigration').start().place().succeed().succeed();
    expect(d.committed).toBe(true);
    const [note] = d.send({ type: 'CANCEL' });
    expect(note).toEqual({
      message: 'cancel arrived during SwitchingOver, after the VM started on the target: the move completes instead of disrupting the VM again',
      warning: true,
    });
    d.run();
    expect(d.phase).toBe('Succeeded');
    expect(d.ctx).toMatchObject({ cancelRequested: true, cancelIgnored: true });
    expect(d.runningOn).toEqual([TARGET]);
  });
});

describe('lost hosts', () => {
  test('a live move that loses its source while migrating fails without retrying, and says the VM is Lost there', () => {
    const d = drive('Live', 'SharedStorage').start().place().succeed().lose('source');
    while (d.phase === 'RollingBack') d.succeed();
    expect(d.phase).toBe('Failed');
    expect(d.lastNote).toBe(
      'failed: source host lost during Migrating: source host node-a: its agent\'s lease expired; the VM runs nowhere else; the source host node-a is unreachable: the VM is Lost there until that host returns',
    );
    expect(d.world.hosts[TARGET]!.vm).toBeUndefined();
  });

  test('a lost target past the point of no return ends Failed with the VM Lost on the target', () => {
    const d = drive('Cold', 'SharedStorage').start().place();
    while (d.phase !== 'Verifying') d.succeed();
    d.lose('target');
    expect(d.phase).toBe('Failed');
    expect(d.ctx.failure).toBe("target host node-b lost during Verifying: target host node-b: its agent's lease expired; the VM is Lost there until its host returns or is evacuated");
  });

  test('a resize in place whose host is lost, reported under either role, asks nothing more of it', () => {
    for (const role of ['source', 'target'] as const) {
      const before = drive('ResizeInPlace', 'Restart').start().place().succeed();
      expect(before.phase).toBe('Resizing');
      before.lose(role);
      expect(before.phase).toBe('Failed');

      const after = drive('ResizeInPlace', 'Restart').start().place().succeed().succeed();
      expect(after.phase).toBe('SwitchingOver');
      after.lose(role);
      expect(after.phase).toBe('Failed');
      expect(after.ctx.failure).toContain('host node-a lost during SwitchingOver');
    }
  });

  test('a rollback step keeps its own key when a lost host drops the steps before it', () => {
    const d = drive('Cold', 'SharedStorage').start().place().succeed();
    expect(d.phase).toBe('PreparingTarget');
    d.fail(true);
    expect(d.step).toMatchObject({ key: '1.rollback-remove-target-0', role: 'target' });
    d.lose('target');
    // The source's step moved up to the same position, but it is another operation.
    expect(d.step).toMatchObject({ key: '1.rollback-restart-source-0', role: 'source' });
    d.succeed();
    expect(d.phase).toBe('Pending'); // a lost target may be retried elsewhere
    expect(d.runningOn).toEqual([SOURCE]);
  });

  test('clean-up on a lost source is left for later; on a lost target the source keeps its copy', () => {
    const src = drive('Cold', 'DiskCopy').start().place();
    while (src.phase !== 'CleaningUp') src.succeed();
    src.lose('source');
    expect(src.phase).toBe('Succeeded');
    expect(src.lastNote).toBe('source host lost during clean-up: its leftovers are removed when its agent returns');

    const tgt = drive('Cold', 'DiskCopy').start().place();
    while (tgt.phase !== 'CleaningUp') tgt.succeed();
    tgt.lose('target');
    expect(tgt.phase).toBe('Succeeded');
    expect(tgt.lastNote).toBe("the VM runs on node-b, but that host's agent was lost during clean-up: the source's copy on node-a is kept");
    expect(tgt.world.hosts[SOURCE]!.disks).toBe('data');
  });

  test('a rebuild of a fenced host that finds no host fails, and says the VM runs nowhere', () => {
    const d = drive('Rebuild', 'FromImage', true, false).start();
    d.send({ type: 'REJECTED', message: 'no host can take the VM: all hosts are full' });
    expect(d.phase).toBe('Failed');
    expect(d.ctx.failure).toBe('no host can take the VM: all hosts are full; the source host node-a is unreachable, so the VM runs nowhere');
  });
});

describe('clean-up', () => {
  const cleaning = () => {
    const d = drive('Live', 'BlockMigration').start().place();
    while (d.phase !== 'CleaningUp') d.succeed();
    return d;
  };

  test('a transient failure is retried in place, as a new operation', () => {
    const d = cleaning();
    expect(d.step?.key).toBe('1.cleanup-0');
    d.fail(true);
    expect(d.step?.key).toBe('1.cleanup-1');
    d.succeed();
    expect(d.phase).toBe('Succeeded');
    expect(d.world.hosts[SOURCE]!.vm).toBeUndefined();
  });

  test('a failure for good still succeeds (the VM runs on the target), with a warning about the leftovers', () => {
    const d = cleaning();
    const [note] = d.send({ type: 'STEP_FAILED', step: d.step!.key, message: 'permission denied', transient: false });
    expect(d.phase).toBe('Succeeded');
    expect(note).toEqual({ message: "the VM runs on the target, but the source's leftovers could not be removed: permission denied", warning: true });
    expect(d.runningOn).toEqual([TARGET]);
  });
});
