// CPUs and memory of a running domain: vCPUs set live and in the definition, memory grown by a
// DIMM and shrunk by unplugging whole hot-added DIMMs, each change confirmed from the live XML
// once the guest let go. The driver calls it under the VM's lock.
import { setTimeout as sleep } from 'node:timers/promises';
import { MiB } from '../../api/quantity';
import { permanent, transient } from '../common/errors';
import { DIMM_ALIGN_BYTES } from '../common/machineLimits';
import { POLL_MS } from './domains';
import { type DomainFacts, dimmXml, domainFacts } from './domainXml';
import type { LibvirtHost } from './libvirtHost';
import { Affect, DomainState, type DomainRef, type LibvirtConnection } from './remote';
import { LibvirtError, VirErr, isCode } from './rpc';

/** How long a hot-unplug may take the guest. */
const HOT_UNPLUG_TIMEOUT_MS = 30_000;

export async function hotplug(lv: LibvirtHost, id: string, want: { cpu: number; memoryBytes: number }): Promise<void> {
  const c = await lv.connection();
  const d = await lv.requireDomain(c, id);
  const { state } = await c.getState(d);
  if (state !== DomainState.Running && state !== DomainState.Blocked) {
    throw permanent(`${id} is not running on ${lv.host.nodeName}; resize it while stopped instead`);
  }
  const facts = domainFacts(await c.getXmlDesc(d));
  if (want.cpu !== facts.vcpusCurrent) {
    if (want.cpu > facts.vcpusMax) throw permanent(`cannot grow to ${want.cpu} CPUs: ${id} was defined with at most ${facts.vcpusMax}`);
    if (want.cpu < facts.vcpusCurrent && lv.settings.accelerator === 'tcg') {
      // Measured with QEMU 7.2: under TCG the guest ejects the vCPU, but QEMU announces only
      // the vCPU's local APIC as deleted, never the vCPU; libvirt then times out and keeps
      // counting a vCPU the guest no longer has. Refuse rather than leave them disagreeing.
      throw permanent(`cannot remove vCPUs from ${id} while it runs under TCG (libvirt never learns the unplug finished); a cold resize can`);
    }
    try {
      await asPermanent(() => c.setVcpus(d, want.cpu, Affect.Live | Affect.Config), `set ${id} to ${want.cpu} CPUs`);
    } catch (err) {
      // Unplugging waits 5 s for the guest to eject the vCPU; a slow guest (TCG) ejects it
      // later and libvirt notices then. Wait for that, then make the definition agree.
      if (!(want.cpu < facts.vcpusCurrent && isCode(err, VirErr.OperationTimeout))) throw err;
      await waitForFacts(c, d, (f) => f.vcpusCurrent === want.cpu, `the guest of ${id} to release its vCPUs`);
      await c.setVcpus(d, want.cpu, Affect.Config);
    }
  }
  if (want.memoryBytes > facts.memoryBytes) {
    const add = want.memoryBytes - facts.memoryBytes;
    if (add % DIMM_ALIGN_BYTES !== 0) {
      throw permanent(`memory can only grow in steps of ${DIMM_ALIGN_BYTES / MiB} MiB; ${add / MiB} MiB requested`);
    }
    await asPermanent(() => c.attachDevice(d, dimmXml(add), Affect.Live | Affect.Config), `add ${add / MiB} MiB to ${id}`);
  } else if (want.memoryBytes < facts.memoryBytes) {
    // Only whole hot-added DIMMs can go (latest first); what the VM booted with stays.
    let remove = facts.memoryBytes - want.memoryBytes;
    const unplug = [];
    for (const dimm of [...facts.dimms].reverse()) {
      if (remove === 0 || dimm.sizeBytes > remove) break;
      unplug.push(dimm);
      remove -= dimm.sizeBytes;
    }
    if (remove !== 0) {
      throw permanent(
        `cannot shrink memory of ${id} to ${want.memoryBytes / MiB} MiB while running: only whole hot-added DIMMs ` +
          `(${facts.dimms.map((x) => x.sizeBytes / MiB).join(', ') || 'none'} MiB) can be removed; a cold resize can`,
      );
    }
    for (const dimm of unplug) {
      // Size and node identify the DIMM in both the live and the persistent definition (the
      // live one's alias and address are unknown to the persistent one).
      await asPermanent(() => c.detachDevice(d, dimmXml(dimm.sizeBytes), Affect.Live | Affect.Config), `remove a DIMM from ${id}`);
    }
    // libvirt returns once the guest was asked; the DIMM is gone when the guest released it.
    await waitForFacts(c, d, (f) => f.memoryBytes <= want.memoryBytes, `the guest of ${id} to release its memory`);
  }
}

/** Polls the live XML until `ok` (hot-unplug completes when the guest lets go). */
async function waitForFacts(c: LibvirtConnection, d: DomainRef, ok: (f: DomainFacts) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + HOT_UNPLUG_TIMEOUT_MS;
  while (!ok(domainFacts(await c.getXmlDesc(d)))) {
    if (Date.now() > deadline) throw transient(`timed out waiting for ${what} (${HOT_UNPLUG_TIMEOUT_MS / 1000} s)`);
    await sleep(POLL_MS);
  }
}

async function asPermanent<T>(fn: () => Promise<T>, what: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof LibvirtError && !err.transient) throw permanent(`cannot ${what}: ${err.message}`, err);
    throw err;
  }
}
