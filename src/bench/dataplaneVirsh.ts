// The reference side of the data-plane benchmark: the same guest moved the way an administrator
// would with libvirt alone — `virsh migrate --live --p2p` with libvirt's defaults (no bandwidth
// cap unless given, QEMU's downtime limit, no auto-converge, no post-copy) between two
// libvirtd on this machine (hack/libvirt-sandbox.sh). Only what two hosts on one machine need
// is added: the target's console path (--xml), the loopback address, and --unsafe (the "shared"
// folder is a local one, which libvirt cannot tell from unshared storage). The domains are the
// ones vmove's libvirt driver would define (its XML), created and removed with virsh.
import { spawn, execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { VmSpec } from '../protocol/vm';
import { startSandboxHost, stopSandbox, type SandboxHost } from '../drivers/libvirt';
import { domainXml } from '../drivers/libvirt/domainXml';
import { serialLogPath } from '../drivers/libvirt/layout';
import { createDisk } from '../drivers/common/disks';
import { DEFAULT_LIMITS } from '../drivers/common/machineLimits';
import { diskPath, imageFiles } from '../drivers/common/paths';
import type { MigrationRun, Scenario } from './dataplaneScenarios';
import { HeartbeatClock, guestPause } from './dataplaneConsole';
import { setTimeout as sleep } from 'node:timers/promises';

const run = promisify(execFile);
const MiB = 1024 * 1024;

/** What `virsh domjobinfo` prints that the benchmark reads. */
export interface JobInfo {
  timeElapsedMs?: number;
  downtimeMs?: number;
  dataProcessedBytes?: number;
  dataRemainingBytes?: number;
  dirtyRatePagesPerSecond?: number;
  pageSizeBytes?: number;
  iteration?: number;
}

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: MiB, GiB: 1024 * MiB, TiB: 1024 * 1024 * MiB };

/** Parse `virsh domjobinfo` output. Pure. */
export function parseJobInfo(text: string): JobInfo {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) fields.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const num = (key: string): number | undefined => {
    const m = /^(-?[\d.]+)/.exec(fields.get(key) ?? '');
    return m ? Number(m[1]) : undefined;
  };
  const bytes = (key: string): number | undefined => {
    const m = /^([\d.]+)\s*(B|KiB|MiB|GiB|TiB)$/.exec(fields.get(key) ?? '');
    return m ? Math.round(Number(m[1]) * UNITS[m[2]!]!) : undefined;
  };
  const out: JobInfo = {};
  const set = <K extends keyof JobInfo>(k: K, v: number | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('timeElapsedMs', num('Time elapsed'));
  set('downtimeMs', num('Total downtime'));
  set('dataProcessedBytes', bytes('Data processed'));
  set('dataRemainingBytes', bytes('Data remaining'));
  set('dirtyRatePagesPerSecond', num('Dirty rate'));
  set('pageSizeBytes', num('Page size'));
  set('iteration', num('Iteration'));
  return out;
}

export class VirshSide {
  private constructor(
    private readonly source: SandboxHost,
    private readonly target: SandboxHost,
  ) {}

  /** Two libvirtd under `root`, sharing `sharedDir` and the guest kit's `imagesDir`. */
  static async start(root: string, imagesDir: string, ports: [number, number]): Promise<VirshSide> {
    const sharedDir = path.join(root, 'shared');
    const half = Math.floor((ports[1] - ports[0] + 1) / 2);
    const source = await startSandboxHost({ root, name: 'lv-src', sharedDir, imagesDir, ports: [ports[0], ports[0] + half - 1] });
    const target = await startSandboxHost({ root, name: 'lv-dst', sharedDir, imagesDir, ports: [ports[0] + half, ports[1]] });
    return new VirshSide(source, target);
  }

  async stop(): Promise<void> {
    for (const h of [this.source, this.target]) await stopSandbox(h.sandbox.name, h.sandbox.dir, { killGuests: true });
  }

  /** The guest's disk (an overlay of the image's base disk on the shared folder) and its domain, running. */
  private async boot(vm: VmSpec): Promise<void> {
    const host = this.source.config;
    const image = imageFiles(host, vm.image);
    const disk = diskPath(host, vm.id, 'root', 'SharedFile');
    await createDisk({ path: disk, format: 'qcow2', sizeBytes: vm.disks[0]!.sizeBytes, base: image.baseDisk });
    const xml = domainXml({
      vm,
      domainType: 'qemu',
      kernel: image.kernel,
      initrd: image.initrd,
      cmdline: `${(await readFile(image.cmdline, 'utf8')).trim()} ${vm.kernelArgs ?? ''}`.trim(),
      disks: [{ name: 'root', path: disk, format: 'qcow2' }],
      serialLog: serialLogPath(host, vm.id),
      ...DEFAULT_LIMITS,
    });
    const file = path.join(host.stateDir, `${vm.id}.xml`);
    await mkdir(path.dirname(serialLogPath(host, vm.id)), { recursive: true });
    await writeFile(file, xml);
    await this.virsh(this.source, ['define', file]);
    await this.virsh(this.source, ['start', vm.id]);
  }

  private async remove(vm: VmSpec): Promise<void> {
    for (const h of [this.source, this.target]) {
      await this.virsh(h, ['destroy', vm.id]).catch(() => '');
      await this.virsh(h, ['undefine', vm.id]).catch(() => '');
    }
    await rm(path.dirname(diskPath(this.source.config, vm.id, 'root', 'SharedFile')), { recursive: true, force: true });
  }

  private virsh(host: SandboxHost, args: string[]): Promise<string> {
    return run('virsh', ['-c', host.sandbox.uri, ...args], { encoding: 'utf8', timeout: 30_000 }).then((r) => r.stdout);
  }

  async migrate(s: Scenario, name: string): Promise<MigrationRun> {
    const vm: VmSpec = {
      id: name,
      uid: randomUUID(),
      image: s.image,
      cpu: 1,
      memoryBytes: s.memoryMiB * MiB,
      disks: [{ name: 'root', sizeBytes: 1024 * MiB, storage: 'SharedFile' }],
      kernelArgs: `vmove.dirty_mib=${s.dirtyMiB}`,
    };
    const clock = new HeartbeatClock().watch(serialLogPath(this.source.config, vm.id));
    try {
      await this.boot(vm);
      await clock.waitFor(s.settleHeartbeats);
      const before = clock.last()!;

      // The target's console goes to its own state folder.
      const targetLog = serialLogPath(this.target.config, vm.id);
      await mkdir(path.dirname(targetLog), { recursive: true });
      clock.watch(targetLog);
      const xml = (await this.virsh(this.source, ['dumpxml', '--migratable', vm.id])).split(serialLogPath(this.source.config, vm.id)).join(targetLog);
      const xmlFile = path.join(this.source.config.stateDir, `${vm.id}-target.xml`);
      await writeFile(xmlFile, xml);
      const args = [
        '-c', this.source.sandbox.uri, 'migrate', '--live', '--p2p', '--persistent', '--unsafe', vm.id, this.target.sandbox.peerUri,
        '--migrateuri', 'tcp://127.0.0.1', '--listen-address', '127.0.0.1', '--xml', xmlFile,
        ...(s.bandwidthMiBps ? ['--bandwidth', String(s.bandwidthMiBps)] : []),
      ];
      const t0 = Date.now();
      const child = spawn('virsh', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      let done: number | null | undefined;
      void exited.then((code) => (done = code));
      // While it runs: what libvirt says of the guest's dirty rate; past the time limit, abort.
      let maxDirty = 0;
      let live: JobInfo = {};
      let aborted = false;
      while (done === undefined) {
        const info = parseJobInfo(await this.virsh(this.source, ['domjobinfo', vm.id]).catch(() => ''));
        if (info.timeElapsedMs !== undefined) live = info;
        maxDirty = Math.max(maxDirty, (info.dirtyRatePagesPerSecond ?? 0) * (info.pageSizeBytes ?? 4096));
        if (!aborted && Date.now() - t0 > s.virshTimeoutMs) {
          aborted = true;
          await this.virsh(this.source, ['domjobabort', vm.id]).catch(() => '');
        }
        await Promise.race([exited, sleep(1000)]);
      }
      const wallMs = Date.now() - t0;
      const converged = done === 0 && !aborted;
      const final = converged ? parseJobInfo(await this.virsh(this.source, ['domjobinfo', '--completed', vm.id])) : live;
      if (converged) await clock.waitFor(before + 3);
      clock.stop();
      return {
        tool: 'libvirt',
        converged,
        how: converged ? 'defaults' : aborted ? `aborted after ${Math.round(s.virshTimeoutMs / 1000)} s` : `failed: ${stderr.trim()}`,
        migrationMs: final.timeElapsedMs ?? wallMs,
        wallMs,
        ...(converged && final.downtimeMs !== undefined ? { downtimeMs: final.downtimeMs } : {}),
        bytesSent: final.dataProcessedBytes ?? 0,
        ...(converged ? { bytesLeft: 0 } : final.dataRemainingBytes !== undefined ? { bytesLeft: final.dataRemainingBytes } : {}),
        maxDirtyRateBytesPerSecond: maxDirty,
        ...(converged ? { guestPause: guestPause(clock.samples(), before) } : {}),
      };
    } finally {
      clock.stop();
      await this.remove(vm);
    }
  }
}
