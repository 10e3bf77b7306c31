// What a VM boots from directly (no boot loader): its image's kernel and initrd, which must be
// there, and a command line of the image's defaults followed by the VM's own kernelArgs.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { VmSpec } from '../../protocol/vm';
import type { HostConfig } from '../driver';
import { exists } from './disks';
import { permanent } from './errors';
import { imageFiles } from './paths';

export interface DirectBoot {
  kernel: string;
  initrd: string;
  cmdline: string;
}

export async function directBoot(host: HostConfig, vm: VmSpec): Promise<DirectBoot> {
  const image = imageFiles(host, vm.image);
  for (const f of [image.kernel, image.initrd]) {
    if (!(await exists(f))) throw permanent(`image ${vm.image} has no ${path.basename(f)} in ${image.dir}`);
  }
  const defaults = (await readFile(image.cmdline, 'utf8').catch(() => 'console=ttyS0')).trim();
  return { kernel: image.kernel, initrd: image.initrd, cmdline: [defaults, vm.kernelArgs ?? ''].join(' ').trim() };
}
