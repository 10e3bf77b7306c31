// libvirt domain XML for a vmove VM, and the few facts vmove reads back from libvirt's XML.
// Pure: strings in, strings out. libvirt re-serialises what it is given with single-quoted
// attributes, which the readers below rely on.
import { createHash } from 'node:crypto';
import type { VmSpec } from '../../protocol/vm';

const KiB = 1024;
export const VMOVE_XML_NAMESPACE = 'https://vmove.dev/xmlns/libvirt-domain/v1';

/** Everything host-specific the XML of one VM on one host needs. */
export interface DomainLayout {
  vm: VmSpec;
  /** `qemu` runs guests under TCG, `kvm` with hardware virtualisation. */
  domainType: 'qemu' | 'kvm';
  kernel: string;
  initrd: string;
  cmdline: string;
  disks: { name: string; path: string; format: 'qcow2' | 'raw' }[];
  serialLog: string;
  maxCpus: number;
  maxMemoryBytes: number;
  memorySlots: number;
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

export function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-fA-F]+);/g, (_, n: string) => String.fromCodePoint(parseInt(n, 16)))
    .replace(/&amp;/g, '&');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The libvirt UUID of a VM: its Kubernetes UID when that is a UUID (it always is for objects
 * from an API server), otherwise a name-based UUID (RFC 4122 v5 layout) derived from it.
 * Source and target of a migration must agree on it, so it depends on the UID alone.
 */
export function domainUuid(uid: string): string {
  if (UUID.test(uid)) return uid.toLowerCase();
  const h = createHash('sha1').update(`vmove:${uid}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** virtio disk names in the order of the VM's disks: vda, vdb, … */
export function diskTarget(index: number): string {
  let name = '';
  let i = index;
  do {
    name = String.fromCharCode(97 + (i % 26)) + name;
    i = Math.floor(i / 26) - 1;
  } while (i >= 0);
  return `vd${name}`;
}

export function domainXml(l: DomainLayout): string {
  const { vm } = l;
  if (!Number.isInteger(vm.cpu) || vm.cpu < 1) throw new Error(`cpu must be a positive integer, got ${vm.cpu}`);
  const memKiB = Math.floor(vm.memoryBytes / KiB);
  const maxCpus = Math.max(l.maxCpus, vm.cpu);
  const maxMemKiB = Math.max(Math.floor(l.maxMemoryBytes / KiB), memKiB);
  const current = vm.cpu < maxCpus ? ` current='${vm.cpu}'` : '';
  // Memory hotplug needs <maxMemory> with slots and a NUMA topology (one cell holding every vCPU).
  const maxMemory = maxMemKiB > memKiB && l.memorySlots > 0 ? `  <maxMemory slots='${l.memorySlots}' unit='KiB'>${maxMemKiB}</maxMemory>\n` : '';
  const disks = l.disks
    .map(
      (d, i) => `    <disk type='file' device='disk'>
      <driver name='qemu' type='${d.format}' discard='unmap'/>
      <source file='${escapeXml(d.path)}'/>
      <target dev='${diskTarget(i)}' bus='virtio'/>
    </disk>
`,
    )
    .join('');
  return `<domain type='${l.domainType}'>
  <name>${escapeXml(vm.id)}</name>
  <uuid>${domainUuid(vm.uid)}</uuid>
  <metadata>
    <vmove:vm xmlns:vmove='${VMOVE_XML_NAMESPACE}'>${escapeXml(JSON.stringify(vm))}</vmove:vm>
  </metadata>
${maxMemory}  <memory unit='KiB'>${memKiB}</memory>
  <currentMemory unit='KiB'>${memKiB}</currentMemory>
  <vcpu placement='static'${current}>${maxCpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${escapeXml(l.kernel)}</kernel>
    <initrd>${escapeXml(l.initrd)}</initrd>
    <cmdline>${escapeXml(l.cmdline)}</cmdline>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>qemu64</model>
    <numa>
      <cell id='0' cpus='0-${maxCpus - 1}' memory='${memKiB}' unit='KiB'/>
    </numa>
  </cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
${disks}    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='${escapeXml(l.serialLog)}' append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** A DIMM to hot-add to NUMA cell 0. */
export function dimmXml(sizeBytes: number): string {
  return `<memory model='dimm'>
  <target>
    <size unit='KiB'>${Math.floor(sizeBytes / KiB)}</size>
    <node>0</node>
  </target>
</memory>
`;
}

/** The VmSpec vmove stored in the domain's metadata; undefined for domains vmove did not define. */
export function vmSpecFromXml(xml: string): VmSpec | undefined {
  const m = /<(\w+):vm\b[^>]*xmlns:\1=(['"])https:\/\/vmove\.dev\/xmlns\/libvirt-domain\/v1\2[^>]*>([\s\S]*?)<\/\1:vm>/.exec(xml);
  if (!m) return undefined;
  try {
    const spec = JSON.parse(unescapeXml(m[3]!)) as VmSpec;
    return typeof spec.id === 'string' && typeof spec.uid === 'string' ? spec : undefined;
  } catch {
    return undefined;
  }
}

export interface DimmDevice {
  sizeBytes: number;
}

/** Facts about a domain's live (or defined) configuration that vmove acts on. */
export interface DomainFacts {
  vcpusCurrent: number;
  vcpusMax: number;
  memoryBytes: number;
  dimms: DimmDevice[];
  serialLog?: string;
  /** Source file of every disk, by target device (vda → path). */
  diskFiles: Map<string, string>;
}

const sizeInBytes = (value: string, unit: string | undefined): number => {
  const units: Record<string, number> = { b: 1, bytes: 1, k: KiB, kib: KiB, m: KiB ** 2, mib: KiB ** 2, g: KiB ** 3, gib: KiB ** 3 };
  const factor = units[(unit ?? 'KiB').toLowerCase()];
  if (factor === undefined) throw new Error(`unknown memory unit ${unit}`);
  return Number(value) * factor;
};

export function domainFacts(xml: string): DomainFacts {
  const vcpu = /<vcpu\b([^>]*)>(\d+)<\/vcpu>/.exec(xml);
  if (!vcpu) throw new Error('domain XML has no <vcpu>');
  const vcpusMax = Number(vcpu[2]);
  const currentAttr = /current='(\d+)'/.exec(vcpu[1]!);
  const memory = /<memory\b(?:\s+unit='(\w+)')?\s*>(\d+)<\/memory>/.exec(xml);
  if (!memory) throw new Error('domain XML has no <memory>');
  const dimms: DimmDevice[] = [];
  for (const m of xml.matchAll(/<memory model='dimm'[^>]*>([\s\S]*?)<\/memory>/g)) {
    const body = m[1]!;
    const size = /<size unit='(\w+)'>(\d+)<\/size>/.exec(body);
    if (!size) continue;
    dimms.push({ sizeBytes: sizeInBytes(size[2]!, size[1]) });
  }
  const serial = /<serial type='file'>[\s\S]*?<source path='([^']+)'/.exec(xml)?.[1];
  const diskFiles = new Map<string, string>();
  for (const m of xml.matchAll(/<disk type='file' device='disk'>([\s\S]*?)<\/disk>/g)) {
    const file = /<source file='([^']+)'/.exec(m[1]!)?.[1];
    const dev = /<target dev='([^']+)'/.exec(m[1]!)?.[1];
    if (file && dev) diskFiles.set(dev, unescapeXml(file));
  }
  return {
    vcpusCurrent: currentAttr ? Number(currentAttr[1]) : vcpusMax,
    vcpusMax,
    memoryBytes: sizeInBytes(memory[2]!, memory[1]),
    dimms,
    ...(serial ? { serialLog: unescapeXml(serial) } : {}),
    diskFiles,
  };
}

/**
 * The XML a migration target should use: the source's XML with every host-specific file path
 * (disks on this host's local storage, the serial log in its state folder) replaced by the
 * target's. Only whole quoted attribute values are replaced, so one path cannot clobber
 * another that merely starts with it.
 */
export function retargetXml(xml: string, paths: ReadonlyMap<string, string>): string {
  let out = xml;
  for (const [from, to] of paths) {
    if (from === to) continue;
    for (const q of ["'", '"']) out = out.split(`${q}${escapeXml(from)}${q}`).join(`${q}${escapeXml(to)}${q}`);
  }
  return out;
}
