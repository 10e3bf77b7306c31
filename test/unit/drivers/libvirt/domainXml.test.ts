import type { VmSpec } from '../../../../src/protocol/vm';
import { diskTarget, dimmXml, domainFacts, domainUuid, domainXml, retargetXml, vmSpecFromXml, type DomainLayout } from '../../../../src/drivers/libvirt/domainXml';

const MiB = 1024 * 1024;
const vm: VmSpec = {
  id: 'team-a_web',
  uid: '6f0c5a7e-2d2b-4a53-9b1f-1d0f3c8e9a10',
  image: 'testguest',
  cpu: 2,
  memoryBytes: 512 * MiB,
  disks: [
    { name: 'root', sizeBytes: 128 * MiB, storage: 'Local' },
    { name: 'data', sizeBytes: 64 * MiB, storage: 'SharedBlock' },
  ],
  kernelArgs: 'vmove.dirty_mib=64 note="<&>"',
};

const layout: DomainLayout = {
  vm,
  domainType: 'qemu',
  kernel: '/images/testguest/vmlinuz',
  initrd: '/images/testguest/initrd.img',
  cmdline: 'console=ttyS0 vmove.dirty_mib=64',
  disks: [
    { name: 'root', path: '/h1/local/team-a_web/root.qcow2', format: 'qcow2' },
    { name: 'data', path: '/shared/team-a_web/data.raw', format: 'raw' },
  ],
  serialLog: '/h1/state/libvirt/vms/team-a_web/serial.log',
  maxCpus: 8,
  maxMemoryBytes: 16 * 1024 * MiB,
  memorySlots: 8,
};

describe('the domain XML of a VM', () => {
  const xml = domainXml(layout);

  test('TCG, qemu64, direct kernel boot, ACPI for power button and hotplug', () => {
    expect(xml).toContain("<domain type='qemu'>");
    expect(xml).toContain("<model fallback='forbid'>qemu64</model>");
    expect(xml).toContain('<kernel>/images/testguest/vmlinuz</kernel>');
    expect(xml).toContain('<cmdline>console=ttyS0 vmove.dirty_mib=64</cmdline>');
    expect(xml).toMatch(/<features>\s*<acpi\/>\s*<apic\/>/);
    expect(domainXml({ ...layout, domainType: 'kvm' })).toContain("<domain type='kvm'>");
  });

  test('hotplug headroom: vCPUs up to the limit, memory slots and a NUMA cell holding every vCPU', () => {
    expect(xml).toContain("<vcpu placement='static' current='2'>8</vcpu>");
    expect(xml).toContain("<maxMemory slots='8' unit='KiB'>16777216</maxMemory>");
    expect(xml).toContain("<memory unit='KiB'>524288</memory>");
    expect(xml).toContain("<cell id='0' cpus='0-7' memory='524288' unit='KiB'/>");
    // A VM as large as the limit has no room to grow: no "current" and no maxMemory.
    const full = domainXml({ ...layout, vm: { ...vm, cpu: 8, memoryBytes: 16 * 1024 * MiB } });
    expect(full).toContain("<vcpu placement='static'>8</vcpu>");
    expect(full).not.toContain('<maxMemory');
  });

  test('disks in order as vda, vdb with their formats; serial console to this host’s log', () => {
    expect(xml).toMatch(/type='qcow2'[^]*?<source file='\/h1\/local\/team-a_web\/root.qcow2'\/>\s*<target dev='vda'/);
    expect(xml).toMatch(/type='raw'[^]*?<source file='\/shared\/team-a_web\/data.raw'\/>\s*<target dev='vdb'/);
    expect(xml).toContain("<source path='/h1/state/libvirt/vms/team-a_web/serial.log' append='on'/>");
    expect([0, 1, 25, 26, 27].map(diskTarget)).toEqual(['vda', 'vdb', 'vdz', 'vdaa', 'vdab']);
  });

  test('the UUID is the VM UID, so source and target agree; other UIDs map to a stable UUID', () => {
    expect(xml).toContain(`<uuid>${vm.uid}</uuid>`);
    const derived = domainUuid('not-a-uuid');
    expect(derived).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(domainUuid('not-a-uuid')).toBe(derived);
    expect(domainUuid('other')).not.toBe(derived);
  });

  test('the VmSpec travels in the metadata and reads back, also as libvirt re-serialises it', () => {
    expect(vmSpecFromXml(xml)).toEqual(vm);
    // libvirt writes the namespace with double quotes and escapes only what text needs.
    const rewritten = `<domain type='qemu' id='3'><name>team-a_web</name><metadata>
    <vmove:vm xmlns:vmove="https://vmove.dev/xmlns/libvirt-domain/v1">${JSON.stringify(vm).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')}</vmove:vm>
  </metadata></domain>`;
    expect(vmSpecFromXml(rewritten)).toEqual(vm);
    expect(vmSpecFromXml("<domain type='qemu'><name>someone-elses</name></domain>")).toBeUndefined();
    expect(vmSpecFromXml('<domain><metadata><x:vm xmlns:x="https://example.com/other">{}</x:vm></metadata></domain>')).toBeUndefined();
  });
});

describe('reading facts back from libvirt XML', () => {
  // Shaped like `virsh dumpxml` of a running test guest after a DIMM was hot-added.
  const live = `<domain type='qemu' id='4'>
  <name>dbg_block</name>
  <maxMemory slots='8' unit='KiB'>16777216</maxMemory>
  <memory unit='KiB'>524288</memory>
  <currentMemory unit='KiB'>524288</currentMemory>
  <vcpu placement='static' current='2'>8</vcpu>
  <vcpus>
    <vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>
    <vcpu id='1' enabled='yes' hotpluggable='yes' order='2'/>
  </vcpus>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='/h2/local/dbg_block/root.qcow2' index='1'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
    </disk>
    <serial type='file'>
      <source path='/h2/state/libvirt/vms/dbg_block/serial.log' append='on'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
      <alias name='serial0'/>
    </serial>
    <memory model='dimm'>
      <target>
        <size unit='KiB'>262144</size>
        <node>0</node>
      </target>
      <alias name='dimm0'/>
      <address type='dimm' slot='0' base='0x100000000'/>
    </memory>
  </devices>
</domain>`;

  test('vCPUs, total memory including DIMMs, the DIMMs, the serial log and the disks', () => {
    expect(domainFacts(live)).toEqual({
      vcpusCurrent: 2,
      vcpusMax: 8,
      memoryBytes: 512 * MiB,
      dimms: [{ sizeBytes: 256 * MiB }],
      serialLog: '/h2/state/libvirt/vms/dbg_block/serial.log',
      diskFiles: new Map([['vda', '/h2/local/dbg_block/root.qcow2']]),
    });
  });

  test('a DIMM to hot-add sits in NUMA cell 0', () => {
    expect(dimmXml(256 * MiB)).toMatch(/<memory model='dimm'>\s*<target>\s*<size unit='KiB'>262144<\/size>\s*<node>0<\/node>/);
  });

  test('retargeting swaps whole paths only', () => {
    const paths = new Map([
      ['/h2/local/dbg_block/root.qcow2', '/h3/local/dbg_block/root.qcow2'],
      ['/h2/state/libvirt/vms/dbg_block/serial.log', '/h3/state/libvirt/vms/dbg_block/serial.log'],
    ]);
    const moved = domainFacts(retargetXml(live, paths));
    expect(moved.diskFiles.get('vda')).toBe('/h3/local/dbg_block/root.qcow2');
    expect(moved.serialLog).toBe('/h3/state/libvirt/vms/dbg_block/serial.log');
    // A path that merely starts like a mapped one is left alone.
    expect(retargetXml("<source file='/h2/local/dbg_block/root.qcow2.bak'/>", paths)).toBe("<source file='/h2/local/dbg_block/root.qcow2.bak'/>");
  });
});
