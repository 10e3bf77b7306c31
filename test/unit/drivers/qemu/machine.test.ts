import { MiB } from '../../../../src/api/quantity';
import { DEFAULT_LIMITS } from '../../../../src/drivers/common/machineLimits';
import { HotplugImpossible, applyStep, bootLayout, layoutCpus, layoutMemoryBytes, parseLayout, planHotplug, type HotpluggableCpuSlot } from '../../../../src/drivers/qemu/machine';

const freeSlots = (n: number): HotpluggableCpuSlot[] =>
  Array.from({ length: n }, (_, i) => ({ type: 'qemu64-x86_64-cpu', props: { 'socket-id': 0, 'core-id': n - i, 'thread-id': 0 } }));

describe('planHotplug', () => {
  const boot = bootLayout(1, 256 * MiB, DEFAULT_LIMITS);

  test('grows CPUs into the lowest free slots and memory as one DIMM', () => {
    const steps = planHotplug(boot, { cpu: 3, memoryBytes: 768 * MiB }, freeSlots(3));
    expect(steps).toEqual([
      { kind: 'addCpu', driver: 'qemu64-x86_64-cpu', cpu: { id: 'cpu-s0c1t0', socketId: 0, coreId: 1, threadId: 0 } },
      { kind: 'addCpu', driver: 'qemu64-x86_64-cpu', cpu: { id: 'cpu-s0c2t0', socketId: 0, coreId: 2, threadId: 0 } },
      { kind: 'addDimm', dimm: { id: 'dimm0', sizeBytes: 512 * MiB } },
    ]);
    const grown = steps.reduce(applyStep, boot);
    expect(layoutCpus(grown)).toBe(3);
    expect(layoutMemoryBytes(grown)).toBe(768 * MiB);
    expect(planHotplug(grown, { cpu: 3, memoryBytes: 768 * MiB }, freeSlots(1))).toEqual([]);
  });

  test('shrinks by unplugging the latest hotplugged devices only, memory before CPUs', () => {
    const grown = planHotplug(boot, { cpu: 2, memoryBytes: 512 * MiB }, freeSlots(3)).reduce(applyStep, boot);
    const more = planHotplug(grown, { cpu: 2, memoryBytes: 640 * MiB }, []).reduce(applyStep, grown);
    expect(planHotplug(more, { cpu: 1, memoryBytes: 512 * MiB }, [])).toEqual([
      { kind: 'removeDimm', id: 'dimm1' },
      { kind: 'removeCpu', id: 'cpu-s0c1t0' },
    ]);
    // Fewer CPUs, more memory: the DIMM goes in while every CPU is still there.
    expect(planHotplug(grown, { cpu: 1, memoryBytes: 640 * MiB }, []).map((s) => s.kind)).toEqual(['addDimm', 'removeCpu']);
    expect(planHotplug(more, { cpu: 2, memoryBytes: 256 * MiB }, []).map((s) => s.kind)).toEqual(['removeDimm', 'removeDimm']);
  });

  test('refuses what a running machine cannot do, saying why', () => {
    expect(() => planHotplug(boot, { cpu: 1, memoryBytes: 128 * MiB }, [])).toThrow(/only whole hotplugged DIMMs/);
    expect(() => planHotplug(bootLayout(2, 256 * MiB, DEFAULT_LIMITS), { cpu: 1, memoryBytes: 256 * MiB }, [])).toThrow(/booted with 2/);
    expect(() => planHotplug(boot, { cpu: 9, memoryBytes: 256 * MiB }, freeSlots(8))).toThrow(/at most 8/);
    expect(() => planHotplug(boot, { cpu: 1, memoryBytes: 300 * MiB }, [])).toThrow(HotplugImpossible);
    expect(() => planHotplug(boot, { cpu: 1, memoryBytes: 32 * 1024 * MiB }, [])).toThrow(/at most 16384 MiB/);
  });
});

test('a layout survives its trip through VmSpec.machine; foreign text is ignored', () => {
  const l = bootLayout(2, 512 * MiB, DEFAULT_LIMITS);
  expect(parseLayout(JSON.stringify(l))).toEqual(l);
  expect(parseLayout('{"something":"else"}')).toBeUndefined();
  expect(parseLayout('not json')).toBeUndefined();
  expect(parseLayout(undefined)).toBeUndefined();
});

test('boot layouts reject sizes QEMU would not take', () => {
  expect(() => bootLayout(0, 256 * MiB, DEFAULT_LIMITS)).toThrow(/cpu/);
  expect(() => bootLayout(1, 255 * MiB, DEFAULT_LIMITS)).toThrow(/2 MiB/);
  expect(bootLayout(12, 256 * MiB, DEFAULT_LIMITS).maxCpus).toBe(12);
});
