// Copying a stopped VM's disks between hosts (cold moves): the source streams each disk file, the
// target writes it in place of its own. writeDisk runs under the VM's lock; readDisk does not.
import type { Readable } from 'node:stream';
import type { VmSpec } from '../../protocol/vm';
import { writeDiskFile } from '../common/disks';
import { permanent } from '../common/errors';
import { diskIndex, readVmDisk } from '../common/vmDisks';
import type { DiskReader } from '../driver';
import { vmSpecFromXml } from './domainXml';
import type { LibvirtHost } from './libvirtHost';
import { XmlFlag } from './remote';

export async function readDisk(lv: LibvirtHost, id: string, disk: string): Promise<DiskReader> {
  const c = await lv.connection();
  const d = await lv.requireDomain(c, id);
  if (await c.isActive(d)) throw permanent(`${id} must be stopped before its disk ${disk} is copied`);
  const spec = vmSpecFromXml(await c.getXmlDesc(d, XmlFlag.Inactive));
  if (!spec) throw permanent(`${id} carries no vmove metadata`);
  const i = diskIndex(id, spec.disks, disk);
  return readVmDisk(lv.host, id, disk, (await lv.diskFiles(spec))[i]!);
}

export async function writeDisk(lv: LibvirtHost, vm: VmSpec, disk: string, data: Readable, sizeBytes: number): Promise<void> {
  const i = diskIndex(vm.id, vm.disks, disk);
  if (await lv.isActive(vm.id)) throw permanent(`${vm.id} runs here; its disk ${disk} cannot be replaced`);
  await writeDiskFile((await lv.diskFiles(vm))[i]!, data, sizeBytes);
}
