// Live move: the VM keeps running while its memory (and, for local disks, its disks) streams to
// the target; the guest pauses only for the final switch-over.
//   Variants: SharedStorage (memory only) · BlockMigration (local disks mirrored over NBD first)
//
//   Pending → Scheduling → PreparingTarget → Migrating → SwitchingOver → Verifying → CleaningUp → Succeeded
//                               └──────────────┴─→ RollingBack → Failed | Cancelled | Pending (retry)
//   From SwitchingOver on, the VM runs on the target: a failed verification restarts it on the source from its disk.
import { rungAt, tuningAt } from './ladder';
import { acting, cleaningUp, committed, defineMove } from './moveDefinition';
import { onSource, onTarget } from './steps';
import { type MoveContext, type Step, VERIFY_WINDOW_MS } from './vocabulary';

const block = (c: MoveContext): boolean => c.variant === 'BlockMigration';

export const liveMove = defineMove('Live', {
  states: {
    PreparingTarget: acting({
      reaches: 'targetPrepared',
      // Migration streams are TLS unless the policy says plaintext; only then does the request say so.
      step: (c) =>
        onTarget('prepare-incoming', {
          kind: 'prepareIncoming',
          blockMigration: block(c),
          tuning: rungAt(c.policy, 0).tuning,
          ...(c.policy.insecureMigration ? { insecureMigration: true } : {}),
        }),
    }),
    Migrating: acting({
      reaches: 'migrationStarted',
      converge: true,
      step: (c) => onSource('migrate', { kind: 'migrate', to: c.endpoint!, tuning: tuningAt(c.policy, c.rung, c.throttleStepPercent), blockMigration: block(c) }),
    }),
    SwitchingOver: committed({
      reaches: 'targetStarted',
      step: () => onTarget('complete-incoming', { kind: 'completeIncoming' }),
    }),
    Verifying: committed({
      // No worse than the source showed at hand-over (the migrate step read its last heartbeat):
      // a guest that heartbeated must go on from there (a restart on the target fails too); one
      // still booting is judged by what can be seen, within the boot window.
      announce: true,
      step: (c) =>
        onTarget(
          'verify',
          c.guestHeartbeat !== undefined
            ? { kind: 'verify', windowMs: VERIFY_WINDOW_MS.afterLiveMigration, expectRunning: true, heartbeatAbove: c.guestHeartbeat }
            : { kind: 'verify', windowMs: VERIFY_WINDOW_MS.afterBoot, expectRunning: true, acceptConsole: true },
        ),
    }),
    CleaningUp: cleaningUp((c) => onSource('release-source', { kind: 'deleteVm', deleteLocalDisks: block(c) })),
  },
  rollback(c: MoveContext): Step[] {
    if (!c.reached.targetStarted) {
      // The target never ran (it only runs after completeIncoming): the source may resume at once,
      // and the target's copy is removed after, so the VM is back in service first.
      const steps: Step[] = [];
      if (c.reached.migrationStarted) steps.push(onSource('abort-migration', { kind: 'abortMigration' }));
      steps.push(onSource('resume-source', { kind: 'resumeSource' }));
      if (c.reached.targetPrepared) steps.push(onTarget('remove-target', { kind: 'deleteVm', deleteLocalDisks: true }));
      return steps;
    }
    // The target ran: end it before the source runs again — at once, as the move judged it (a
    // polite power-off of a guest that made no progress only waits out its timeout).
    const steps: Step[] = [onTarget('remove-target', { kind: 'deleteVm', deleteLocalDisks: true, discard: true })];
    // On local disks alone the target wrote only its own copies: the source's paused memory and
    // its disks are still one state, and it resumes in a moment (a boot from disk would lose the
    // target's writes just the same). Shared disks the target wrote to: the source boots from them.
    if (c.sharedDisks === false) steps.push(onSource('resume-source', { kind: 'resumeSource' }));
    // Boots the source when the resume could not (a no-op on a VM that runs).
    steps.push(onSource('restart-source', { kind: 'startVm' }));
    return steps;
  },
});
