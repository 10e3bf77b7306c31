// Cold move: stop the VM, bring its disks to the target (nothing to copy on shared storage),
// define it there — with new resources when the move resizes — and start it.
//   Variants: SharedStorage (disks stay where they are) · DiskCopy (Local disks copied to the target)
//
//   Pending → Scheduling → StoppingSource → CopyingDisks → PreparingTarget → SwitchingOver → Verifying → CleaningUp → Succeeded
//                               └───────────────┴───────────────┴─→ RollingBack → Failed | Cancelled | Pending (retry)
//   A VM that was stopped skips StoppingSource and SwitchingOver and stays stopped on the target.
import { acting, cleaningUp, committed, defineMove } from './moveDefinition';
import { onSource, onTarget } from './steps';
import { SOURCE_AGENT, type MoveContext, type Step, VERIFY_WINDOW_MS } from './vocabulary';

const copiesDisks = (c: MoveContext): boolean => c.variant === 'DiskCopy';

export const coldMove = defineMove('Cold', {
  states: {
    StoppingSource: acting({ reaches: 'sourceStopped', skipWhen: 'vmStopped', step: () => onSource('stop-source', { kind: 'stopVm' }) }),
    CopyingDisks: acting({
      reaches: 'targetPrepared',
      skipWhen: 'sharedStorage',
      step: () => onTarget('copy-disks', { kind: 'copyDisks', from: { endpoint: SOURCE_AGENT } }),
    }),
    PreparingTarget: acting({ reaches: 'targetPrepared', step: () => onTarget('define-target', { kind: 'ensureVm', disks: 'keep', start: false }) }),
    SwitchingOver: committed({ reaches: 'targetStarted', skipWhen: 'vmStopped', step: () => onTarget('start-target', { kind: 'startVm' }) }),
    Verifying: committed({ step: (c) => onTarget('verify', { kind: 'verify', windowMs: VERIFY_WINDOW_MS.afterBoot, expectRunning: c.vmRunning }) }),
    CleaningUp: cleaningUp((c) => onSource('release-source', { kind: 'deleteVm', deleteLocalDisks: copiesDisks(c) })),
  },
  rollback(c: MoveContext): Step[] {
    const steps: Step[] = [];
    // The target's copies go; on shared storage only its definition (the disks are the VM's).
    if (c.reached.targetPrepared) steps.push(onTarget('remove-target', { kind: 'deleteVm', deleteLocalDisks: copiesDisks(c) }));
    if (c.reached.sourceStopped && c.vmRunning) steps.push(onSource('restart-source', { kind: 'startVm' }));
    return steps;
  },
});
