// Resize in place: new CPU/memory for a VM on the host it runs on.
//   Hotplug: add CPUs / memory to the running guest (growing only, when the driver supports it)
//     Pending → Scheduling → Resizing → Verifying → Succeeded
//   Restart: stop, redefine with the new resources, start
//     Pending → Scheduling → StoppingSource → Resizing → SwitchingOver → Verifying → Succeeded
//   Failures roll back to the old resources: → RollingBack → Failed | Cancelled | Pending (retry)
// Source and target are the same host; every step runs there.
import type { MovePhase } from '../api/types';
import {
  actingState,
  committedState,
  finalStates,
  initialContext,
  moveSetup,
  onSource,
  pendingState,
  rollingBackState,
  schedulingState,
  type MachineSpec,
} from './common';
import { type MoveContext, type Step, VERIFY_WINDOW_MS } from './vocabulary';

const hotplug = (c: MoveContext): boolean => c.variant === 'Hotplug';

export const resizeInPlaceSpec: MachineSpec = {
  step(state: MovePhase, c: MoveContext): Step | undefined {
    switch (state) {
      case 'StoppingSource':
        return onSource('stop', { kind: 'stopVm' });
      case 'Resizing':
        return hotplug(c)
          ? onSource('hotplug', { kind: 'hotplug', cpu: c.after.cpu, memoryBytes: c.after.memoryBytes }, 'after')
          : onSource('redefine', { kind: 'ensureVm', disks: 'keep', start: false }, 'after');
      case 'SwitchingOver':
        return onSource('start', { kind: 'startVm' }, 'after');
      case 'Verifying':
        return onSource('verify', { kind: 'verify', windowMs: hotplug(c) ? VERIFY_WINDOW_MS.afterLiveMigration : VERIFY_WINDOW_MS.afterBoot, expectRunning: c.vmRunning }, 'after');
      default:
        return undefined;
    }
  },
  rollback(c: MoveContext): Step[] {
    if (hotplug(c)) {
      return [onSource('hotplug-back', { kind: 'hotplug', cpu: c.before.cpu, memoryBytes: c.before.memoryBytes })];
    }
    const steps: Step[] = [];
    if (c.reached.sourceStopped) {
      if (c.reached.targetStarted) steps.push(onSource('stop-resized', { kind: 'stopVm' }, 'after'));
      steps.push(onSource('redefine-back', { kind: 'ensureVm', disks: 'keep', start: false }));
      if (c.vmRunning) steps.push(onSource('restart', { kind: 'startVm' }));
    }
    return steps;
  },
};

export const resizeInPlaceMachine = moveSetup.createMachine({
  id: 'ResizeInPlace',
  initial: 'Pending',
  context: ({ input }) => initialContext(input),
  states: {
    Pending: pendingState(),
    Scheduling: schedulingState('StoppingSource'),
    StoppingSource: actingState(resizeInPlaceSpec, { state: 'StoppingSource', next: 'Resizing', reaches: 'sourceStopped', skipWhen: 'hotplugVariant' }),
    Resizing: actingState(resizeInPlaceSpec, { state: 'Resizing', next: 'SwitchingOver', reaches: 'targetPrepared' }),
    SwitchingOver: committedState(resizeInPlaceSpec, { state: 'SwitchingOver', next: 'Verifying', reaches: 'targetStarted', skipWhen: 'hotplugOrStopped' }),
    Verifying: committedState(resizeInPlaceSpec, { state: 'Verifying', next: 'Succeeded' }),
    RollingBack: rollingBackState(),
    ...finalStates,
  },
});
