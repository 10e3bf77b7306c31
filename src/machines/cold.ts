// Cold move: stop the VM, bring its disks to the target (nothing to copy on shared storage),
// define it there — with new resources when the move resizes — and start it.
//   Variants: SharedStorage (disks stay where they are) · DiskCopy (Local disks copied to the target)
//
//   Pending → Scheduling → StoppingSource → CopyingDisks → PreparingTarget → SwitchingOver → Verifying → CleaningUp → Succeeded
//                               └───────────────┴───────────────┴─→ RollingBack → Failed | Cancelled | Pending (retry)
//   A VM that was stopped skips StoppingSource and SwitchingOver and stays stopped on the target.
import type { MovePhase } from '../api/types';
import {
  actingState,
  cleaningUpState,
  committedState,
  finalStates,
  initialContext,
  moveSetup,
  onSource,
  onTarget,
  pendingState,
  rollingBackState,
  schedulingState,
  type MachineSpec,
} from './common';
import { SOURCE_AGENT, type MoveContext, type Step, VERIFY_WINDOW_MS } from './vocabulary';

const copiesDisks = (c: MoveContext): boolean => c.variant === 'DiskCopy';

export const coldSpec: MachineSpec = {
  step(state: MovePhase, c: MoveContext): Step | undefined {
    switch (state) {
      case 'StoppingSource':
        return onSource('stop-source', { kind: 'stopVm' });
      case 'CopyingDisks':
        return onTarget('copy-disks', { kind: 'copyDisks', from: { endpoint: SOURCE_AGENT } });
      case 'PreparingTarget':
        return onTarget('define-target', { kind: 'ensureVm', disks: 'keep', start: false });
      case 'SwitchingOver':
        return onTarget('start-target', { kind: 'startVm' });
      case 'Verifying':
        return onTarget('verify', { kind: 'verify', windowMs: VERIFY_WINDOW_MS.afterBoot, expectRunning: c.vmRunning });
      case 'CleaningUp':
        return onSource('release-source', { kind: 'deleteVm', deleteLocalDisks: copiesDisks(c) });
      default:
        return undefined;
    }
  },
  rollback(c: MoveContext): Step[] {
    const steps: Step[] = [];
    // The target's copies go; on shared storage only its definition (the disks are the VM's).
    if (c.reached.targetPrepared) steps.push(onTarget('remove-target', { kind: 'deleteVm', deleteLocalDisks: copiesDisks(c) }));
    if (c.reached.sourceStopped && c.vmRunning) steps.push(onSource('restart-source', { kind: 'startVm' }));
    return steps;
  },
};

export const coldMachine = moveSetup.createMachine({
  id: 'Cold',
  initial: 'Pending',
  context: ({ input }) => initialContext(input),
  states: {
    Pending: pendingState(),
    Scheduling: schedulingState('StoppingSource'),
    StoppingSource: actingState(coldSpec, { state: 'StoppingSource', next: 'CopyingDisks', reaches: 'sourceStopped', skipWhen: 'vmStopped' }),
    CopyingDisks: actingState(coldSpec, { state: 'CopyingDisks', next: 'PreparingTarget', reaches: 'targetPrepared', skipWhen: 'sharedStorage' }),
    PreparingTarget: actingState(coldSpec, { state: 'PreparingTarget', next: 'SwitchingOver', reaches: 'targetPrepared' }),
    SwitchingOver: committedState(coldSpec, { state: 'SwitchingOver', next: 'Verifying', reaches: 'targetStarted', skipWhen: 'vmStopped' }),
    Verifying: committedState(coldSpec, { state: 'Verifying', next: 'CleaningUp' }),
    CleaningUp: cleaningUpState(),
    RollingBack: rollingBackState(),
    ...finalStates,
  },
});
