// Resize in place: new CPU/memory for a VM on the host it runs on.
//   Hotplug: add CPUs / memory to the running guest (growing only, when the driver supports it)
//     Pending → Scheduling → Resizing → Verifying → Succeeded
//   Restart: stop, redefine with the new resources, start
//     Pending → Scheduling → StoppingSource → Resizing → SwitchingOver → Verifying → Succeeded
//   Failures roll back to the old resources: → RollingBack → Failed | Cancelled | Pending (retry)
// Source and target are the same host; every step runs there.
import { acting, committed, defineMove } from './moveDefinition';
import { onSource } from './steps';
import { type MoveContext, type Step, VERIFY_WINDOW_MS } from './vocabulary';

const hotplug = (c: MoveContext): boolean => c.variant === 'Hotplug';

export const resizeInPlaceMove = defineMove('ResizeInPlace', {
  states: {
    StoppingSource: acting({ reaches: 'sourceStopped', skipWhen: 'hotplugVariant', step: () => onSource('stop', { kind: 'stopVm' }) }),
    Resizing: acting({
      reaches: 'targetPrepared',
      step: (c) =>
        hotplug(c)
          ? onSource('hotplug', { kind: 'hotplug', cpu: c.after.cpu, memoryBytes: c.after.memoryBytes }, 'after')
          : onSource('redefine', { kind: 'ensureVm', disks: 'keep', start: false }, 'after'),
    }),
    SwitchingOver: committed({ reaches: 'targetStarted', skipWhen: 'hotplugOrStopped', step: () => onSource('start', { kind: 'startVm' }, 'after') }),
    Verifying: committed({
      step: (c) =>
        onSource('verify', { kind: 'verify', windowMs: hotplug(c) ? VERIFY_WINDOW_MS.afterLiveMigration : VERIFY_WINDOW_MS.afterBoot, expectRunning: c.vmRunning }, 'after'),
    }),
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
});
