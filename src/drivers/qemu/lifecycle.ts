// A VM's life on this host outside migrations: its disks made, its definition recorded, its QEMU
// booted and powered off, and all of it forgotten. The driver calls these under the VM's lock.
import { rm } from 'node:fs/promises';
import { componentLogger } from '../../log';
import type { VmSpec } from '../../protocol/vm';
import { permanent } from '../common/errors';
import { deleteDiskFiles, ensureDiskFiles } from '../common/vmDisks';
import { parseLayout } from './machine';
import { vmFiles } from './paths';
import { waitGone } from './processes';
import { bootLayoutOf, type QemuHost } from './qemuHost';
import type { VmRecord } from './vmRecords';

const log = componentLogger('qemu-driver');

export async function ensureDisks(q: QemuHost, vm: VmSpec, how: 'keep' | 'fresh'): Promise<void> {
  const files = await q.records.diskFiles(vm);
  if (how === 'fresh' && (await q.vms.pid(vm.id)) !== undefined) {
    throw permanent(`cannot recreate the disks of ${vm.id} while it runs`);
  }
  await ensureDiskFiles(vm, files, how);
}

export async function define(q: QemuHost, vm: VmSpec): Promise<void> {
  const current = await q.records.read(vm.id);
  const running = (await q.vms.pid(vm.id)) !== undefined;
  const layout = running && current ? current.layout : (parseLayout(vm.machine) ?? bootLayoutOf(q, vm));
  await q.records.write(vm.id, { ...current, spec: vm, layout });
}

export async function undefine(q: QemuHost, id: string, opts: { deleteLocalDisks: boolean; deleteSharedDisks?: boolean }): Promise<void> {
  const rec = await q.records.read(id);
  await q.vms.kill(id);
  if (rec) await deleteDiskFiles(rec.spec, await q.records.diskFiles(rec.spec), opts);
  await rm(vmFiles(q.host, id).dir, { recursive: true, force: true });
}

export async function start(q: QemuHost, id: string): Promise<void> {
  const rec = await q.records.require(id);
  if ((await q.vms.pid(id)) !== undefined) {
    const status = await q.vms.runStatus(id);
    if (status === 'running') return;
    // Paused after a migration, or a target that never got its stream: that state is stale,
    // the disks are the truth.
    log.info({ vm: id, status }, 'replacing a stale QEMU process with a fresh boot');
    await q.vms.kill(id);
  }
  const layout = bootLayoutOf(q, rec.spec);
  const fresh: VmRecord = { spec: rec.spec, layout };
  await q.records.write(id, fresh);
  await q.vms.launch(fresh, false);
}

export async function stop(q: QemuHost, id: string): Promise<void> {
  const pid = await q.vms.pid(id);
  if (pid === undefined) return;
  const status = await q.vms.runStatus(id).catch(() => 'unknown');
  if (status === 'running' && q.settings.shutdownTimeoutMs > 0) {
    await q.vms.qmp(id).execute('system_powerdown').catch(() => undefined);
    if (await waitGone(pid, q.settings.shutdownTimeoutMs)) return q.vms.forget(id);
    log.warn({ vm: id }, `guest did not power off within ${q.settings.shutdownTimeoutMs} ms; quitting QEMU`);
  }
  await q.vms.kill(id);
}
