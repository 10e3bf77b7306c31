// Rebuild: start the VM afresh on another host — from its shared disks, or from its source
// image when its disks were local (their data is lost, and the status says so). This is how the
// VMs of a dead, fenced host come back; the source steps are skipped when its agent is gone.
//   Variants: FromSharedDisk · FromImage
//
//   Pending → Scheduling → StoppingSource → PreparingTarget → SwitchingOver → Verifying → CleaningUp → Succeeded
//                               └────────────────┴─→ RollingBack → Failed | Cancelled | Pending (retry)
import { isSameHost } from './attempts';
import { acting, cleaningUp, committed, defineMove } from './moveDefinition';
import { onSource, onTarget } from './steps';
import { type MoveContext, type Step, VERIFY_WINDOW_MS } from './vocabulary';

const fromImage = (c: MoveContext): boolean => c.variant === 'FromImage';

export const rebuildMove = defineMove('Rebuild', {
  states: {
    StoppingSource: acting({ reaches: 'sourceStopped', skipWhen: 'sourceUnreachable', step: () => onSource('stop-source', { kind: 'stopVm' }) }),
    PreparingTarget: acting({
      reaches: 'targetPrepared',
      step: (c) => onTarget('define-target', { kind: 'ensureVm', disks: fromImage(c) ? 'fresh' : 'keep', start: false }),
    }),
    SwitchingOver: committed({ reaches: 'targetStarted', skipWhen: 'vmStopped', step: () => onTarget('start-target', { kind: 'startVm' }) }),
    Verifying: committed({ step: (c) => onTarget('verify', { kind: 'verify', windowMs: VERIFY_WINDOW_MS.afterBoot, expectRunning: c.vmRunning }) }),
    CleaningUp: cleaningUp(() => onSource('release-source', { kind: 'deleteVm', deleteLocalDisks: true })),
  },
  rollback(c: MoveContext): Step[] {
    const steps: Step[] = [];
    if (c.reached.targetPrepared && !isSameHost(c)) steps.push(onTarget('remove-target', { kind: 'deleteVm', deleteLocalDisks: true }));
    if (c.reached.sourceStopped && c.vmRunning) steps.push(onSource('restart-source', { kind: 'startVm' }));
    return steps;
  },
});
