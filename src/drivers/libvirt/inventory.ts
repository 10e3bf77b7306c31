// What this host holds, as the agent reports it: every domain with vmove metadata, its state from
// libvirt's state and reason, its size from the live XML, and the guest's heartbeat from its
// serial log; and the VMs it was prepared to receive whose domain libvirt has not created yet.
import type { VmInfo } from '../../protocol/vm';
import { guestSignal, readConsole } from '../common/serialLog';
import { outgoingJobActive } from './domains';
import { domainFacts, vmSpecFromXml } from './domainXml';
import type { LibvirtHost } from './libvirtHost';
import { vmStateOf } from './migrationPlan';
import { DomainState, type DomainRef, type LibvirtConnection } from './remote';
import { VirErr, isCode } from './rpc';

export async function listVms(lv: LibvirtHost): Promise<VmInfo[]> {
  const c = await lv.connection();
  const incoming = await lv.records.preparedIncoming();
  const out: VmInfo[] = [];
  for (const d of await c.listAllDomains()) {
    try {
      const info = await vmInfo(c, d, incoming.has(d.name));
      if (info) out.push(info);
    } catch (err) {
      // A domain undefined between the listing and the lookup is simply gone.
      if (!isCode(err, VirErr.NoDomain)) throw err;
    }
  }
  // Prepared to receive a VM whose domain libvirt creates only when the stream starts.
  for (const [id, spec] of incoming) {
    if (!out.some((v) => v.id === id)) out.push({ id, uid: spec.uid, state: 'Incoming', cpu: spec.cpu, memoryBytes: spec.memoryBytes });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

async function vmInfo(c: LibvirtConnection, d: DomainRef, prepared: boolean): Promise<VmInfo | undefined> {
  const xml = await c.getXmlDesc(d);
  const spec = vmSpecFromXml(xml);
  if (!spec) return undefined; // not a vmove domain
  const facts = domainFacts(xml);
  const { state, reason } = await c.getState(d);
  let vmState = vmStateOf(state, reason);
  // An old definition of a VM this host is prepared to receive again.
  if (prepared && state === DomainState.Shutoff) vmState = 'Incoming';
  // A source in its final stop-and-copy phase is paused "for migration" too; it still runs here.
  if (vmState === 'Incoming' && (await outgoingJobActive(c, d))) vmState = 'Running';
  const info: VmInfo = { id: d.name, uid: spec.uid, state: vmState, cpu: facts.vcpusCurrent, memoryBytes: facts.memoryBytes };
  if (vmState !== 'Stopped') {
    // A domain defined without a serial log file (not by vmove's domain XML) shows nothing of its guest.
    if (facts.serialLog) Object.assign(info, guestSignal(await readConsole(facts.serialLog)));
    else info.guestUnobservable = 'the domain has no serial log file, so its guest heartbeat cannot be read';
  }
  return info;
}
