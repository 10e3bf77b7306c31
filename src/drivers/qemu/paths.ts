// Where the qemu driver keeps its VMs' runtime files on a host (disks and images follow the layout
// it shares with the libvirt driver: ../common/paths.ts). Pure: paths only, no I/O.
import path from 'node:path';
import type { HostConfig } from '../driver';

/** Per-VM runtime files in the host's state folder. */
export interface VmFiles {
  dir: string;
  /** The VM definition (spec + machine layout) this host holds. */
  definition: string;
  pidFile: string;
  qmpSocket: string;
  serialLog: string;
  /** QEMU's own stdout/stderr. */
  qemuLog: string;
}

/** Unix socket paths longer than this do not fit in sockaddr_un. */
const MAX_SOCKET_PATH = 107;

export const vmsRoot = (host: HostConfig): string => path.join(host.stateDir, 'qemu', 'vms');

export function vmFiles(host: HostConfig, id: string): VmFiles {
  const dir = path.join(vmsRoot(host), id);
  const files = {
    dir,
    definition: path.join(dir, 'vm.json'),
    pidFile: path.join(dir, 'qemu.pid'),
    qmpSocket: path.join(dir, 'qmp.sock'),
    serialLog: path.join(dir, 'serial.log'),
    qemuLog: path.join(dir, 'qemu.log'),
  };
  if (Buffer.byteLength(files.qmpSocket) > MAX_SOCKET_PATH) {
    throw new Error(`QMP socket path ${files.qmpSocket} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter state folder`);
  }
  return files;
}
