// What this host holds, as the agent reports it: every VM with a record, its state from QEMU's
// run state, the size it runs with, and the guest's heartbeat from its serial log.
import { readdir } from 'node:fs/promises';
import { componentLogger } from '../../log';
import type { VmInfo, VmState } from '../../protocol/vm';
import { guestSignal, readConsole } from '../common/serialLog';
import { layoutCpus, layoutMemoryBytes } from './machine';
import { vmFiles, vmsRoot } from './paths';
import type { QemuHost } from './qemuHost';
import type { VmRecord } from './vmRecords';

const log = componentLogger('qemu-driver');

export async function listVms(q: QemuHost): Promise<VmInfo[]> {
  let ids: string[];
  try {
    ids = (await readdir(vmsRoot(q.host), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
  const out: VmInfo[] = [];
  for (const id of ids.sort()) {
    const rec = await q.records.read(id);
    if (!rec) continue;
    const state = await vmState(q, id, rec);
    const info: VmInfo = {
      id,
      uid: rec.spec.uid,
      state,
      cpu: state === 'Stopped' ? rec.spec.cpu : layoutCpus(rec.layout),
      memoryBytes: state === 'Stopped' ? rec.spec.memoryBytes : layoutMemoryBytes(rec.layout),
      machine: JSON.stringify(rec.layout),
    };
    // Every QEMU this driver starts writes its serial console to a log of its own: a missing
    // heartbeat there means the guest has not come up (yet), never that it cannot be seen.
    if (state !== 'Stopped') Object.assign(info, guestSignal(await readConsole(vmFiles(q.host, id).serialLog)));
    out.push(info);
  }
  return out;
}

async function vmState(q: QemuHost, id: string, rec: VmRecord): Promise<VmState> {
  const pid = await q.vms.pid(id);
  if (pid === undefined) return 'Stopped';
  let status: string;
  try {
    status = (await q.vms.qmp(id).execute<{ status: string }>('query-status', undefined, { timeoutMs: 5000 })).status;
  } catch (err) {
    log.warn({ vm: id, err: (err as Error).message }, 'QEMU process does not answer QMP');
    return 'Crashed';
  }
  switch (status) {
    case 'running':
    case 'finish-migrate':
      return 'Running';
    case 'inmigrate':
      return 'Incoming';
    case 'postmigrate':
      return 'Migrated';
    case 'prelaunch':
    case 'paused':
    case 'suspended':
    case 'restore-vm':
    case 'save-vm':
      return rec.incoming ? 'Incoming' : 'Paused';
    case 'shutdown':
      return 'Stopped';
    default:
      // internal-error, io-error, guest-panicked, watchdog, colo
      return 'Crashed';
  }
}
