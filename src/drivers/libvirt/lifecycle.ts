// A VM's life on this host outside migrations: its disks made, its domain defined from vmove's
// spec, booted, powered off, and undefined with its disks. The driver calls these under the VM's lock.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { VmSpec } from '../../protocol/vm';
import { directBoot } from '../common/directBoot';
import { permanent, transient } from '../common/errors';
import { deleteDiskFiles, ensureDiskFiles, requireDiskFiles } from '../common/vmDisks';
import { destroyIfActive, waitForState } from './domains';
import { domainUuid, domainXml, vmSpecFromXml } from './domainXml';
import { serialLogPath, vmStateDir } from './layout';
import type { LibvirtHost } from './libvirtHost';
import { DEFINE_VALIDATE, DomainState, PausedReason, UNDEFINE_EVERYTHING, XmlFlag, type DomainRef, type LibvirtConnection } from './remote';
import { VirErr, isCode } from './rpc';

/** How often stop presses the power button again. */
const SHUTDOWN_REPEAT_MS = 3_000;

export async function ensureDisks(lv: LibvirtHost, vm: VmSpec, how: 'keep' | 'fresh'): Promise<void> {
  if (how === 'fresh' && (await lv.isActive(vm.id))) throw permanent(`cannot recreate the disks of ${vm.id} while it runs`);
  await ensureDiskFiles(vm, await lv.diskFiles(vm), how);
}

export async function define(lv: LibvirtHost, vm: VmSpec): Promise<void> {
  const c = await lv.connection();
  const existing = await lv.lookup(c, vm.id);
  if (existing && existing.uuid.toString('hex') !== domainUuid(vm.uid).replace(/-/g, '')) {
    throw permanent(`${lv.host.nodeName} already holds another domain named ${vm.id} (a different VM); undefine it first`);
  }
  await mkdir(vmStateDir(lv.host, vm.id), { recursive: true });
  await c.defineXml(await domainXmlOf(lv, vm), DEFINE_VALIDATE);
}

export async function undefine(lv: LibvirtHost, id: string, opts: { deleteLocalDisks: boolean; deleteSharedDisks?: boolean }): Promise<void> {
  const c = await lv.connection();
  const d = await lv.lookup(c, id);
  let spec: VmSpec | undefined;
  if (d) {
    spec = vmSpecFromXml(await c.getXmlDesc(d, XmlFlag.Inactive));
    await destroyIfActive(c, d);
    await c.undefine(d, UNDEFINE_EVERYTHING).catch((err: unknown) => {
      if (!isCode(err, VirErr.NoDomain)) throw err;
    });
  }
  if (spec) {
    await deleteDiskFiles(spec, await lv.diskFiles(spec), opts);
  } else {
    // Forgotten by libvirt already (an earlier attempt got this far): the VM's disk folders
    // are all that is left to find its disks by.
    if (opts.deleteLocalDisks) await rm(path.join(lv.host.localDir, id), { recursive: true, force: true });
    if (opts.deleteSharedDisks) await rm(path.join(lv.host.sharedDir, id), { recursive: true, force: true });
  }
  await rm(vmStateDir(lv.host, id), { recursive: true, force: true });
}

export async function start(lv: LibvirtHost, id: string): Promise<void> {
  const c = await lv.connection();
  const d = await lv.requireDomain(c, id);
  const { state, reason } = await c.getState(d);
  if (state === DomainState.Running || state === DomainState.Blocked) return;
  if (state === DomainState.Paused) {
    if (reason === PausedReason.Migration) throw transient(`${id} is in the middle of a migration on ${lv.host.nodeName}`);
    if (reason === PausedReason.Postcopy) throw permanent(`${id} has handed its state to a post-copy target`);
    await c.resume(d);
    return;
  }
  await boot(lv, c, d, id);
}

export async function stop(lv: LibvirtHost, id: string): Promise<void> {
  const c = await lv.connection();
  const d = await lv.lookup(c, id);
  if (!d) return;
  const { state } = await c.getState(d);
  if (state === DomainState.Shutoff) return;
  if ((state === DomainState.Running || state === DomainState.Blocked) && lv.settings.shutdownTimeoutMs > 0) {
    try {
      // A press of the power button before the guest listens for it is lost: press again
      // every few seconds until it powers off or the time is up.
      const deadline = Date.now() + lv.settings.shutdownTimeoutMs;
      while (Date.now() < deadline) {
        await c.shutdown(d);
        if (await waitForState(c, d, (s) => s === DomainState.Shutoff, Math.min(SHUTDOWN_REPEAT_MS, deadline - Date.now()))) return;
      }
      lv.log.warn({ vm: id }, `guest did not power off within ${lv.settings.shutdownTimeoutMs} ms; destroying it`);
    } catch (err) {
      if (isCode(err, VirErr.NoDomain)) return;
      if ((await c.getState(d)).state === DomainState.Shutoff) return; // it went off between two presses
      lv.log.warn({ vm: id, err: (err as Error).message }, 'ACPI shutdown failed; destroying the domain');
    }
  }
  await destroyIfActive(c, d);
}

/** Cold boot from the disks. */
export async function boot(lv: LibvirtHost, c: LibvirtConnection, d: DomainRef, id: string): Promise<void> {
  const spec = vmSpecFromXml(await c.getXmlDesc(d, XmlFlag.Inactive));
  if (spec) await requireDiskFiles(id, await lv.diskFiles(spec));
  await mkdir(vmStateDir(lv.host, id), { recursive: true });
  await lv.records.clearOutgoing(id);
  await lv.records.clearIncoming(id);
  await c.create(d);
  lv.log.info({ vm: id }, 'domain started');
}

async function domainXmlOf(lv: LibvirtHost, vm: VmSpec): Promise<string> {
  const boot = await directBoot(lv.host, vm);
  return domainXml({
    vm,
    domainType: lv.settings.domainType,
    kernel: boot.kernel,
    initrd: boot.initrd,
    cmdline: boot.cmdline,
    disks: (await lv.diskFiles(vm)).map((f, i) => ({ name: vm.disks[i]!.name, path: f.path, format: f.format })),
    serialLog: serialLogPath(lv.host, vm.id),
    maxCpus: lv.settings.limits.maxCpus,
    maxMemoryBytes: lv.settings.limits.maxMemoryBytes,
    memorySlots: lv.settings.limits.memorySlots,
  });
}
