import { qemuArgs, type Launch } from '../../../../src/drivers/qemu/commandLine';
import { MiB } from '../../../../src/api/quantity';
import { DEFAULT_LIMITS } from '../../../../src/drivers/common/machineLimits';
import { bootLayout } from '../../../../src/drivers/qemu/machine';

const files = { dir: '/s/vm', definition: '/s/vm/vm.json', pidFile: '/s/vm/qemu.pid', qmpSocket: '/s/vm/qmp.sock', serialLog: '/s/vm/serial.log', qemuLog: '/s/vm/qemu.log' };
const launch = (over: Partial<Launch> = {}): Launch => ({
  id: 'ns_vm',
  uid: '2b1c6a36-94a5-4f7e-9a53-0d1f4b1b9c00',
  accelerator: 'tcg',
  layout: bootLayout(1, 256 * MiB, DEFAULT_LIMITS),
  files,
  kernel: '/img/vmlinuz',
  initrd: '/img/initrd.img',
  append: 'console=ttyS0 vmove.dirty_mib=64',
  disks: [{ name: 'root', path: '/local/ns_vm/root.qcow2', format: 'qcow2' }],
  incoming: false,
  ...over,
});
const after = (args: string[], flag: string): string[] => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));

test('the accelerator is explicit and hotplug headroom is reserved', () => {
  const args = qemuArgs(launch());
  expect(after(args, '-accel')).toEqual(['tcg']);
  expect(after(args, '-smp')).toEqual(['1,maxcpus=8']);
  expect(after(args, '-m')).toEqual(['256M,slots=8,maxmem=16384M']);
  expect(after(args, '-qmp')).toEqual(['unix:/s/vm/qmp.sock,server=on,wait=off']);
  expect(after(args, '-append')).toEqual(['console=ttyS0 vmove.dirty_mib=64']);
  expect(args).not.toContain('-incoming');
});

test('disks are blockdev nodes the migration code can name', () => {
  const args = qemuArgs(launch());
  expect(JSON.parse(after(args, '-blockdev')[0]!)).toEqual({ driver: 'qcow2', 'node-name': 'disk0', file: { driver: 'file', filename: '/local/ns_vm/root.qcow2' } });
  expect(after(args, '-device')).toEqual(['virtio-blk-pci,drive=disk0,id=vd0']);
});

test('a migration target reproduces hotplugged devices and waits paused for its stream', () => {
  const layout = { ...bootLayout(1, 256 * MiB, DEFAULT_LIMITS), cpus: [{ id: 'cpu-s0c1t0', socketId: 0, coreId: 1, threadId: 0 }], dimms: [{ id: 'dimm0', sizeBytes: 256 * MiB }] };
  const args = qemuArgs(launch({ layout, incoming: true }));
  expect(after(args, '-device')).toContain('qemu64-x86_64-cpu,id=cpu-s0c1t0,socket-id=0,core-id=1,thread-id=0');
  expect(after(args, '-device')).toContain('pc-dimm,id=dimm0,memdev=dimm0-mem');
  expect(after(args, '-object')).toEqual(['memory-backend-ram,id=dimm0-mem,size=256M']);
  expect(args.slice(-3)).toEqual(['-incoming', 'defer', '-S']);
});
