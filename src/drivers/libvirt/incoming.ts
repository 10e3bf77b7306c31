// The target side of a live migration: libvirt creates the target domain itself when the source's
// daemon starts the stream, so preparing is making the disks, telling the source where the disks
// and serial log go here, and remembering the VM is expected (migrationRecords.ts).
import type { IncomingEndpoint, MigrationTuning } from '../../protocol/migration';
import type { VmSpec } from '../../protocol/vm';
import { permanent } from '../common/errors';
import { uriHost } from '../common/uriHost';
import { createIncomingDisks, requireBlockMigrationForLocalDisks } from '../common/vmDisks';
import { NotArrivedYet } from '../driver';
import { vmSpecFromXml } from './domainXml';
import { serialLogPath } from './layout';
import type { LibvirtHost } from './libvirtHost';
import type { LibvirtEndpoint } from './migrationRecords';
import { DomainState, PausedReason, XmlFlag } from './remote';

export async function prepareIncoming(lv: LibvirtHost, vm: VmSpec, opts: { blockMigration: boolean; tuning?: MigrationTuning; plaintext?: boolean }): Promise<IncomingEndpoint> {
  const c = await lv.connection();
  const existing = await lv.lookup(c, vm.id);
  const endpoint = await incomingEndpoint(lv, vm, opts);
  if (existing) {
    const { state, reason } = await c.getState(existing);
    // Receiving already (prepareIncoming asked again): same answer, files untouched.
    if (state === DomainState.Paused && reason === PausedReason.Migration) return endpoint;
    if (state !== DomainState.Shutoff) throw permanent(`${vm.id} already runs on ${lv.host.nodeName}`);
    const other = vmSpecFromXml(await c.getXmlDesc(existing, XmlFlag.Inactive));
    if (other && other.uid !== vm.uid) throw permanent(`${lv.host.nodeName} holds another VM named ${vm.id}; undefine it first`);
  }
  requireBlockMigrationForLocalDisks(vm, opts.blockMigration);
  await createIncomingDisks(lv.host, vm, await lv.diskFiles(vm));
  // A migration this host once sent the VM away with says nothing about its coming back.
  await lv.records.clearOutgoing(vm.id);
  await lv.records.markIncoming(vm, endpoint);
  return endpoint;
}

async function incomingEndpoint(lv: LibvirtHost, vm: VmSpec, opts: { blockMigration: boolean; tuning?: MigrationTuning; plaintext?: boolean }): Promise<LibvirtEndpoint> {
  const multifdChannels = opts.tuning?.multifdChannels ?? 0;
  const disks: Record<string, string> = {};
  for (const [i, f] of (await lv.diskFiles(vm)).entries()) disks[vm.disks[i]!.name] = f.path;
  const address = lv.host.migrationAddress;
  // TLS whenever this host's libvirtd has migration certificates, unless the move asked for plaintext.
  const tls = lv.settings.migrationTls && opts.plaintext !== true;
  return {
    migrationUri: `tcp://${uriHost(address)}`,
    ...(tls ? { tls } : {}),
    postCopy: lv.settings.postCopy && opts.tuning?.allowPostCopy !== false && multifdChannels === 0 && !opts.blockMigration,
    multifdChannels,
    libvirt: { peerUri: lv.settings.peerUri, listenAddress: address, disks, serialLog: serialLogPath(lv.host, vm.id) },
  };
}

/** Target side: libvirt resumes the domain itself once its state arrived; confirm it runs. */
export async function completeIncoming(lv: LibvirtHost, id: string): Promise<void> {
  const c = await lv.connection();
  const d = await lv.lookup(c, id);
  if (!d) throw new NotArrivedYet(`${id} has not arrived on ${lv.host.nodeName} yet`);
  const { state, reason } = await c.getState(d);
  if (state === DomainState.Running || state === DomainState.Blocked) return lv.records.clearIncoming(id);
  if (state === DomainState.Shutoff || state === DomainState.Crashed) {
    throw permanent(`${id} is not running on ${lv.host.nodeName}: the incoming migration did not complete`);
  }
  if (state === DomainState.Paused && reason !== PausedReason.Migration && reason !== PausedReason.StartingUp) {
    if (reason === PausedReason.PostcopyFailed) throw permanent(`post-copy migration of ${id} failed; the guest is lost`);
    await c.resume(d);
    return lv.records.clearIncoming(id);
  }
  throw new NotArrivedYet(`${id} has not arrived on ${lv.host.nodeName} yet`);
}
