// CPUs and memory of a running VM: machine.ts plans which vCPUs and DIMMs to plug or unplug,
// this carries the steps out over QMP and records the layout after each one. The driver calls it
// under the VM's lock.
import { setTimeout as sleep } from 'node:timers/promises';
import { permanent, transient } from '../common/errors';
import { HotplugImpossible, type HotplugStep, type HotpluggableCpuSlot, applyStep, planHotplug } from './machine';
import type { QmpClient } from './qmp';
import type { QemuHost } from './qemuHost';

export async function hotplug(q: QemuHost, id: string, want: { cpu: number; memoryBytes: number }): Promise<void> {
  let rec = await q.records.require(id);
  if ((await q.vms.pid(id)) === undefined || (await q.vms.runStatus(id)) !== 'running') {
    throw permanent(`${id} is not running on ${q.host.nodeName}; resize it while stopped instead`);
  }
  const qmp = q.vms.qmp(id);
  const slots = await qmp.execute<HotpluggableCpuSlot[]>('query-hotpluggable-cpus');
  let steps: HotplugStep[];
  try {
    steps = planHotplug(rec.layout, want, slots.filter((s) => s['qom-path'] === undefined));
  } catch (err) {
    if (err instanceof HotplugImpossible) throw permanent(err.message);
    throw err;
  }
  for (const step of steps) {
    await hotplugStep(qmp, step);
    rec = { ...rec, layout: applyStep(rec.layout, step) };
    await q.records.write(id, rec);
  }
  rec = { ...rec, spec: { ...rec.spec, cpu: want.cpu, memoryBytes: want.memoryBytes } };
  await q.records.write(id, rec);
}

async function hotplugStep(qmp: QmpClient, step: HotplugStep): Promise<void> {
  switch (step.kind) {
    case 'addCpu':
      await qmp.execute('device_add', {
        driver: step.driver,
        id: step.cpu.id,
        'socket-id': step.cpu.socketId,
        'core-id': step.cpu.coreId,
        'thread-id': step.cpu.threadId,
      });
      return;
    case 'addDimm':
      await qmp.execute('object-add', { 'qom-type': 'memory-backend-ram', id: `${step.dimm.id}-mem`, size: step.dimm.sizeBytes });
      await qmp.execute('device_add', { driver: 'pc-dimm', id: step.dimm.id, memdev: `${step.dimm.id}-mem` });
      return;
    case 'removeCpu':
    case 'removeDimm': {
      // The guest has to release the device (ACPI eject). QEMU 7.2 sends no DEVICE_DELETED for a
      // CPU (only for its lapic child), so watch the device leave /machine/peripheral instead.
      await qmp.execute('device_del', { id: step.id });
      const deadline = Date.now() + 20_000;
      for (;;) {
        const devices = await qmp.execute<{ name: string }[]>('qom-list', { path: '/machine/peripheral' });
        if (!devices.some((d) => d.name === step.id)) break;
        if (Date.now() > deadline) throw transient(`the guest did not release ${step.id} within 20 s`);
        await sleep(200);
      }
      if (step.kind === 'removeDimm') await qmp.execute('object-del', { id: `${step.id}-mem` });
    }
  }
}
