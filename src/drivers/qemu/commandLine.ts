// The qemu-system-x86_64 command line for a VM. Pure: inputs in, argv out.
import type { MachineLayout } from './machine';
import type { VmFiles } from './paths';

export type Accelerator = 'tcg' | 'kvm';

export interface LaunchDisk {
  name: string;
  path: string;
  format: 'qcow2' | 'raw';
}

export interface Launch {
  id: string;
  uid: string;
  accelerator: Accelerator;
  layout: MachineLayout;
  files: VmFiles;
  kernel: string;
  initrd: string;
  /** Kernel command line: the image's defaults plus the VM's kernelArgs. */
  append: string;
  disks: LaunchDisk[];
  /** Target of a live migration: wait paused for the stream (`-incoming defer -S`). */
  incoming: boolean;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Block node of disk `index`; QEMU node names are short and ASCII, disk names need not be. */
export const diskNode = (index: number): string => `disk${index}`;
export const diskDevice = (index: number): string => `vd${index}`;

export function qemuArgs(l: Launch): string[] {
  const mib = (b: number): string => `${Math.floor(b / (1024 * 1024))}M`;
  const args = [
    '-name', `${l.id},debug-threads=on`,
    // Chosen explicitly: KVM may open yet hang guests, and kvm:tcg fallback would not notice.
    '-accel', l.accelerator,
    '-machine', 'pc',
    '-cpu', 'qemu64',
    '-smp', `${l.layout.bootCpus},maxcpus=${l.layout.maxCpus}`,
    '-m', `${mib(l.layout.bootMemoryBytes)},slots=${l.layout.memorySlots},maxmem=${mib(l.layout.maxMemoryBytes)}`,
    '-display', 'none',
    '-no-user-config',
    '-nodefaults',
    '-serial', `file:${l.files.serialLog}`,
    '-qmp', `unix:${l.files.qmpSocket},server=on,wait=off`,
    '-pidfile', l.files.pidFile,
    '-kernel', l.kernel,
    '-initrd', l.initrd,
    '-append', l.append,
  ];
  if (UUID.test(l.uid)) args.push('-uuid', l.uid);
  l.disks.forEach((d, i) => {
    args.push('-blockdev', JSON.stringify({ driver: d.format, 'node-name': diskNode(i), file: { driver: 'file', filename: d.path } }));
    args.push('-device', `virtio-blk-pci,drive=${diskNode(i)},id=${diskDevice(i)}`);
  });
  for (const cpu of l.layout.cpus) {
    args.push('-device', `qemu64-x86_64-cpu,id=${cpu.id},socket-id=${cpu.socketId},core-id=${cpu.coreId},thread-id=${cpu.threadId}`);
  }
  for (const dimm of l.layout.dimms) {
    args.push('-object', `memory-backend-ram,id=${dimm.id}-mem,size=${mib(dimm.sizeBytes)}`);
    args.push('-device', `pc-dimm,id=${dimm.id},memdev=${dimm.id}-mem`);
  }
  if (l.incoming) args.push('-incoming', 'defer', '-S');
  return args;
}
