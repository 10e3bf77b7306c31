// Rebuild: start the VM afresh on another host — from its shared disks, or from its source
// image when its disks were local (their data is lost, and the status says so). This is how the
// VMs of a dead, fenced host come back; the source steps are skipped when its agent is gone.
//   Variants: FromSharedDisk · FromImage
//
//   Pending → Scheduling → StoppingSource → PreparingTarget → SwitchingOver → Verifying → CleaningUp → Succeeded
//                               └────────────────┴─→ RollingBack → Failed | Cancelled | Pending (retry)
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
import { type MoveContext, type Step, VERIFY_WINDOW_MS } from './vocabulary';

const fromImage = (c: MoveContext): boolean => c.variant === 'FromImage';

export const rebuildSpec: MachineSpec = {
  step(state: MovePhase, c: MoveContext): Step | undefined {
    switch (state) {
      case 'StoppingSource':
        return onSource('stop-source', { kind: 'stopVm' });
      case 'PreparingTarget':
        return onTarget('define-target', { kind: 'ensureVm', disks: fromImage(c) ? 'fresh' : 'keep', start: false });
      case 'SwitchingOver':
        return onTarget('start-target', { kind: 'startVm' });
      case 'Verifying':
        return onTarget('verify', { kind: 'verify', windowMs: VERIFY_WINDOW_MS.afterBoot, expectRunning: c.vmRunning });
      case 'CleaningUp':
        return onSource('release-source', { kind: 'deleteVm', deleteLocalDisks: true });
      default:
        return undefined;
    }
  },
  rollback(c: MoveContext): Step[] {
    const steps: Step[] = [];
    const sameHost = c.targetNode === c.sourceNode;
    if (c.reached.targetPrepared && !sameHost) steps.push(onTarget('remove-target', { kind: 'deleteVm', deleteLocalDisks: true }));
    if (c.reached.sourceStopped && c.vmRunning) steps.push(onSource('restart-source', { kind: 'startVm' }));
    return steps;
  },
};

export const rebuildMachine = moveSetup.createMachine({
  id: 'Rebuild',
  initial: 'Pending',
  context: ({ input }) => initialContext(input),
  states: {
    Pending: pendingState(),
    Scheduling: schedulingState('StoppingSource'),
    StoppingSource: actingState(rebuildSpec, { state: 'StoppingSource', next: 'PreparingTarget', reaches: 'sourceStopped', skipWhen: 'sourceUnreachable' }),
    PreparingTarget: actingState(rebuildSpec, { state: 'PreparingTarget', next: 'SwitchingOver', reaches: 'targetPrepared' }),
    SwitchingOver: committedState(rebuildSpec, { state: 'SwitchingOver', next: 'Verifying', reaches: 'targetStarted', skipWhen: 'vmStopped' }),
    Verifying: committedState(rebuildSpec, { state: 'Verifying', next: 'CleaningUp' }),
    CleaningUp: cleaningUpState(),
    RollingBack: rollingBackState(),
    ...finalStates,
  },
});
