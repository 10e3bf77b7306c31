// The QEMU process of each VM: started detached from the VM's record, reached over its QMP
// socket, found again from its pid file, and ended.
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { componentLogger } from '../../log';
import { directBoot } from '../common/directBoot';
import { permanent } from '../common/errors';
import { requireDiskFiles } from '../common/vmDisks';
import type { HostConfig } from '../driver';
import { type Accelerator, type LaunchDisk, qemuArgs } from './commandLine';
import { vmFiles } from './paths';
import { findQemu, spawnDetached, terminate, waitGone } from './processes';
import { QmpClient, type QmpEvent } from './qmp';
import type { VmRecord, VmRecords } from './vmRecords';

const log = componentLogger('qemu-driver');

export class VmProcesses {
  private readonly clients = new Map<string, QmpClient>();

  constructor(
    private readonly host: HostConfig,
    private readonly settings: { binary: string; accelerator: Accelerator },
    private readonly records: VmRecords,
    /** Every QMP event of a VM's process. */
    private readonly onEvent: (id: string, ev: QmpEvent) => void,
  ) {}

  /** The pid of the VM's QEMU; undefined when none runs. */
  async pid(id: string): Promise<number | undefined> {
    const files = vmFiles(this.host, id);
    return findQemu(files.pidFile, files.qmpSocket);
  }

  qmp(id: string): QmpClient {
    let c = this.clients.get(id);
    if (!c) {
      c = new QmpClient(vmFiles(this.host, id).qmpSocket);
      c.on('event', (ev) => this.onEvent(id, ev));
      this.clients.set(id, c);
    }
    return c;
  }

  /** QEMU's run state (running, inmigrate, postmigrate, …). */
  async runStatus(id: string): Promise<string> {
    return (await this.qmp(id).execute<{ status: string }>('query-status')).status;
  }

  async launch(rec: VmRecord, incoming: boolean): Promise<void> {
    const vm = rec.spec;
    const boot = await directBoot(this.host, vm);
    const files = vmFiles(this.host, vm.id);
    const diskFiles = await this.records.diskFiles(vm);
    await requireDiskFiles(vm.id, diskFiles);
    const disks: LaunchDisk[] = diskFiles.map((d) => ({ name: path.basename(d.path), path: d.path, format: d.format }));
    const args = qemuArgs({
      id: vm.id,
      uid: vm.uid,
      accelerator: this.settings.accelerator,
      layout: rec.layout,
      files,
      kernel: boot.kernel,
      initrd: boot.initrd,
      append: boot.cmdline,
      disks,
      incoming,
    });
    await mkdir(files.dir, { recursive: true });
    // One serial log per QEMU process: the heartbeat of this process, not of an earlier one.
    await rename(files.serialLog, `${files.serialLog}.1`).catch(() => undefined);
    await rm(files.qmpSocket, { force: true });
    await rm(files.pidFile, { force: true });
    this.dropClient(vm.id);
    const proc = spawnDetached(this.settings.binary, args, files.qemuLog);
    log.info({ vm: vm.id, pid: proc.pid, incoming }, 'QEMU started');
    const exited = proc.exited.then((code) => {
      throw new Error(`exited with code ${code}`);
    });
    try {
      await Promise.race([this.qmp(vm.id).connect(), exited]);
    } catch (err) {
      const tail = (await readFile(files.qemuLog, 'utf8').catch(() => '')).split('\n').slice(-5).join('\n').trim();
      await terminate(proc.pid, 1000);
      throw permanent(`QEMU for ${vm.id} did not start (${(err as Error).message}): ${tail}`);
    }
    exited.catch(() => undefined);
  }

  /** End the VM's QEMU process at once (quit, then signals) and forget its runtime files. */
  async kill(id: string): Promise<void> {
    const pid = await this.pid(id);
    if (pid !== undefined) {
      await this.qmp(id).execute('quit', undefined, { timeoutMs: 3000 }).catch(() => undefined);
      if (!(await waitGone(pid, 3000))) await terminate(pid);
    }
    await this.forget(id);
  }

  /** The process has ended: drop its runtime files and the migration it was part of. */
  async forget(id: string): Promise<void> {
    this.dropClient(id);
    const files = vmFiles(this.host, id);
    await rm(files.qmpSocket, { force: true });
    await rm(files.pidFile, { force: true });
    const rec = await this.records.read(id);
    if (rec && (rec.incoming || rec.outgoing)) await this.records.write(id, { spec: rec.spec, layout: rec.layout });
  }

  /** Release the QMP connections; the processes keep running. */
  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private dropClient(id: string): void {
    this.clients.get(id)?.close();
    this.clients.delete(id);
  }
}
