// Copying a stopped VM's disks between hosts (cold moves): the source streams each disk file, the
// target writes it in place of its own. writeDisk runs under the VM's lock; readDisk does not.
import type { Readable } from 'node:stream';
import type { VmSpec } from '../../protocol/vm';
import { writeDiskFile } from '../common/disks';
import { permanent } from '../common/errors';
import { diskIndex, readVmDisk } from '../common/vmDisks';
import type { DiskReader } from '../driver';
import type { QemuHost } from './qemuHost';

export async function readDisk(q: QemuHost, id: string, disk: string): Promise<DiskReader> {
  const rec = await q.records.require(id);
  const i = diskIndex(id, rec.spec.disks, disk);
  if ((await q.vms.pid(id)) !== undefined) throw permanent(`${id} must be stopped before its disk ${disk} is copied`);
  return readVmDisk(q.host, id, disk, (await q.records.diskFiles(rec.spec))[i]!);
}

export async function writeDisk(q: QemuHost, vm: VmSpec, disk: string, data: Readable, sizeBytes: number): Promise<void> {
  const i = diskIndex(vm.id, vm.disks, disk);
  if ((await q.vms.pid(vm.id)) !== undefined) throw permanent(`${vm.id} runs here; its disk ${disk} cannot be replaced`);
  await writeDiskFile((await q.records.diskFiles(vm))[i]!, data, sizeBytes);
}
