// The move machines' stories, one happy path per machine × variant × (running / stopped): the
// states a MoveRequest's history shows, and the agent steps each state asks for. These read as
// the specification; exhaustive.test.ts covers everything that can go wrong.
import { MoveDriver } from './drive';
import { AFTER, BEFORE, SCENARIOS, SOURCE, TARGET } from './scenarios';

interface Story {
  states: string;
  steps: string[];
  /** Where the VM runs at the end (none: it stays stopped). */
  runsOn?: string;
}

const STORIES: Record<string, Story> = {
  'Live/SharedStorage running': {
    states: 'Pending → Scheduling → PreparingTarget → Migrating → SwitchingOver → Verifying → CleaningUp → Succeeded',
    steps: [
      'PreparingTarget: prepareIncoming on target',
      'Migrating: migrate on source',
      'SwitchingOver: completeIncoming on target',
      'Verifying: verify on target',
      'CleaningUp: deleteVm on source',
    ],
    runsOn: TARGET,
  },
  'Live/BlockMigration running': {
    states: 'Pending → Scheduling → PreparingTarget → Migrating → SwitchingOver → Verifying → CleaningUp → Succeeded',
    steps: [
      'PreparingTarget: prepareIncoming on target',
      'Migrating: migrate on source',
      'SwitchingOver: completeIncoming on target',
      'Verifying: verify on target',
      'CleaningUp: deleteVm on source',
    ],
    runsOn: TARGET,
  },
  'Cold/SharedStorage running': {
    states: 'Pending → Scheduling → StoppingSource → PreparingTarget → SwitchingOver → Verifying → CleaningUp → Succeeded',
    steps: ['StoppingSource: stopVm on source', 'PreparingTarget: ensureVm on target', 'SwitchingOver: startVm on target', 'Verifying: verify on target', 'CleaningUp: deleteVm on source'],
    runsOn: TARGET,
  },
  'Cold/DiskCopy running': {
    states: 'Pending → Scheduling → StoppingSource → CopyingDisks → PreparingTarget → SwitchingOver → Verifying → CleaningUp → Succeeded',
    steps: [
      'StoppingSource: stopVm on source',
      'CopyingDisks: copyDisks on target',
      'PreparingTarget: ensureVm on target',
      'SwitchingOver: startVm on target',
      'Verifying: verify on target',
      'CleaningUp: deleteVm on source',
    ],
    runsOn: TARGET,
  },
  // A stopped VM is moved as it is: nothing to stop, nothing to start.
  'Cold/SharedStorage stopped': {
    states: 'Pending → Scheduling → PreparingTarget → Verifying → CleaningUp → Succeeded',
    steps: ['PreparingTarget: ensureVm on target', 'Verifying: verify on target', 'CleaningUp: deleteVm on source'],
  },
  'Cold/DiskCopy stopped': {
    states: 'Pending → Scheduling → CopyingDisks → PreparingTarget → Verifying → CleaningUp → Succeeded',
    steps: ['CopyingDisks: copyDisks on target', 'PreparingTarget: ensureVm on target', 'Verifying: verify on target', 'CleaningUp: deleteVm on source'],
  },
  'Rebuild/FromSharedDisk running': {
    states: 'Pending → Scheduling → StoppingSource → PreparingTarget → SwitchingOver → Verifying → CleaningUp → Succeeded',
    steps: ['StoppingSource: stopVm on source', 'PreparingTarget: ensureVm on target', 'SwitchingOver: startVm on target', 'Verifying: verify on target', 'CleaningUp: deleteVm on source'],
    runsOn: TARGET,
  },
  'Rebuild/FromImage running': {
    states: 'Pending → Scheduling → StoppingSource → PreparingTarget → SwitchingOver → Verifying → CleaningUp → Succeeded',
    steps: ['StoppingSource: stopVm on source', 'PreparingTarget: ensureVm on target', 'SwitchingOver: startVm on target', 'Verifying: verify on target', 'CleaningUp: deleteVm on source'],
    runsOn: TARGET,
  },
  // The VMs of a dead, fenced host: nothing is asked of the source.
  'Rebuild/FromSharedDisk running, source host dead and fenced': {
    states: 'Pending → Scheduling → PreparingTarget → SwitchingOver → Verifying → Succeeded',
    steps: ['PreparingTarget: ensureVm on target', 'SwitchingOver: startVm on target', 'Verifying: verify on target'],
    runsOn: TARGET,
  },
  'Rebuild/FromImage running, source host dead and fenced': {
    states: 'Pending → Scheduling → PreparingTarget → SwitchingOver → Verifying → Succeeded',
    steps: ['PreparingTarget: ensureVm on target', 'SwitchingOver: startVm on target', 'Verifying: verify on target'],
    runsOn: TARGET,
  },
  'Rebuild/FromSharedDisk stopped': {
    states: 'Pending → Scheduling → StoppingSource → PreparingTarget → Verifying → CleaningUp → Succeeded',
    steps: ['StoppingSource: stopVm on source', 'PreparingTarget: ensureVm on target', 'Verifying: verify on target', 'CleaningUp: deleteVm on source'],
  },
  'Rebuild/FromImage stopped': {
    states: 'Pending → Scheduling → StoppingSource → PreparingTarget → Verifying → CleaningUp → Succeeded',
    steps: ['StoppingSource: stopVm on source', 'PreparingTarget: ensureVm on target', 'Verifying: verify on target', 'CleaningUp: deleteVm on source'],
  },
  'Rebuild/FromSharedDisk stopped, source host dead and fenced': {
    states: 'Pending → Scheduling → PreparingTarget → Verifying → Succeeded',
    steps: ['PreparingTarget: ensureVm on target', 'Verifying: verify on target'],
  },
  'Rebuild/FromImage stopped, source host dead and fenced': {
    states: 'Pending → Scheduling → PreparingTarget → Verifying → Succeeded',
    steps: ['PreparingTarget: ensureVm on target', 'Verifying: verify on target'],
  },
  // Resize in place: source and target are the same host.
  'ResizeInPlace/Hotplug running': {
    states: 'Pending → Scheduling → Resizing → Verifying → Succeeded',
    steps: ['Resizing: hotplug on source', 'Verifying: verify on source'],
    runsOn: SOURCE,
  },
  'ResizeInPlace/Restart running': {
    states: 'Pending → Scheduling → StoppingSource → Resizing → SwitchingOver → Verifying → Succeeded',
    steps: ['StoppingSource: stopVm on source', 'Resizing: ensureVm on source', 'SwitchingOver: startVm on source', 'Verifying: verify on source'],
    runsOn: SOURCE,
  },
  'ResizeInPlace/Restart stopped': {
    states: 'Pending → Scheduling → StoppingSource → Resizing → Verifying → Succeeded',
    steps: ['StoppingSource: stopVm on source', 'Resizing: ensureVm on source', 'Verifying: verify on source'],
  },
};

test('every scenario has a story', () => {
  expect(Object.keys(STORIES).sort()).toEqual(SCENARIOS.map((s) => s.name).sort());
});

describe.each(SCENARIOS.map((s) => [s.name, s] as const))('%s', (name, s) => {
  const story = STORIES[name]!;
  const d = new MoveDriver(s).run();

  test('goes through its states in order, one agent step per acting state', () => {
    expect(d.phases.join(' → ')).toBe(story.states);
    expect(d.steps).toEqual(story.steps);
  });

  test(story.runsOn ? `ends with the VM running on ${story.runsOn} alone, with the new resources` : 'ends with the VM stopped and defined on the target alone', () => {
    const home = s.targetNode;
    expect(d.runningOn).toEqual(story.runsOn ? [story.runsOn] : []);
    const vm = d.world.hosts[home]!.vm!;
    expect(vm.defined).toEqual(s.input.after);
    if (story.runsOn) expect(vm.live).toEqual(s.input.after);
    else expect(vm.power).toBe('stopped');
    // The source keeps nothing: its copy was removed (or its host is fenced and gone).
    const others = Object.values(d.world.hosts).filter((h) => h.name !== home && !h.fenced);
    expect(others.map((h) => h.vm)).toEqual(others.map(() => undefined));
  });

  test('never asks a step twice, and never runs the VM on two hosts', () => {
    expect(new Set(d.steps).size).toBe(d.steps.length);
    expect(d.world.harm).toEqual([]);
  });
});

test('a move that resizes ends with the new resources; a live move keeps them', () => {
  const live = new MoveDriver(SCENARIOS.find((s) => s.name === 'Live/SharedStorage running')!).run();
  expect(live.world.hosts[TARGET]!.vm!.live).toEqual(BEFORE);
  const cold = new MoveDriver(SCENARIOS.find((s) => s.name === 'Cold/DiskCopy running')!).run();
  expect(cold.world.hosts[TARGET]!.vm!.live).toEqual(AFTER);
});

test('a rebuild from the image starts the VM on fresh disks; from a shared disk it keeps its data', () => {
  const image = new MoveDriver(SCENARIOS.find((s) => s.name === 'Rebuild/FromImage running')!).run();
  expect(image.world.hosts[TARGET]!.disks).toBe('image');
  const shared = new MoveDriver(SCENARIOS.find((s) => s.name === 'Rebuild/FromSharedDisk running')!).run();
  expect(shared.world.sharedDisks).toBe('data');
});
