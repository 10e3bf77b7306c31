// The libvirt driver passes the driver conformance battery (through real agents), against two
// sandboxed libvirtd daemons on this machine running vmove's test guest under TCG.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { LibvirtDriver, type LibvirtDriverOptions } from '../../../src/drivers/libvirt';
import { startSandboxHost, stopSandbox, type SandboxHost } from '../../../src/drivers/libvirt/sandbox';
import { describeDriverConformance, type ConformanceHost } from '../../support/driverConformance';

const MiB = 1024 * 1024;
const imageDir = execFileSync(path.resolve(__dirname, '../../../hack/build-guest.sh'), { encoding: 'utf8' }).trim();
const driverOptions: LibvirtDriverOptions = { accelerator: 'tcg', shutdownTimeoutMs: 10_000 };

/** The guest's disk counter sits in sector 0 behind a magic: a disk the guest has used carries it, a fresh one does not. */
function sector0Magic(file: string): string {
  const dump = execFileSync('qemu-io', ['-r', '-U', '-f', 'qcow2', '-c', 'read -v 0 16', file], { encoding: 'utf8' });
  return dump.split('\n')[0]!.replace(/^[0-9a-f]+:\s+/, '').slice(0, 47);
}

describeDriverConformance(
  'libvirt',
  async (workDir) => {
    const base = 50000 + (process.pid % 20) * 20;
    const common = { root: workDir, sharedDir: path.join(workDir, 'shared'), imagesDir: path.dirname(imageDir) };
    const sandboxes: SandboxHost[] = [
      await startSandboxHost({ ...common, name: 'la', ports: [base, base + 9] }),
      await startSandboxHost({ ...common, name: 'lb', ports: [base + 10, base + 19] }),
    ];
    const hosts = await Promise.all(
      sandboxes.map(async (s): Promise<ConformanceHost> => ({ config: s.config, driver: await LibvirtDriver.open(s.config, { ...driverOptions, socketPath: s.sandbox.socket }) })),
    );
    return {
      hosts: [hosts[0]!, hosts[1]!],
      image: path.basename(imageDir),
      cleanup: async () => {
        await Promise.all(hosts.map((h) => h.driver.close()));
        for (const s of sandboxes) await stopSandbox(s.sandbox.name, s.sandbox.dir, { killGuests: true });
      },
    };
  },
  {
    bootMs: 60_000,
    migrationMs: 120_000,
    operationMs: 30_000,
    verifyWindowMs: 3_000,
    memoryBytes: 256 * MiB,
    diskBytes: 64 * MiB,
    kernelArgs: 'vmove.disk_counter=1',
    hotplug: { cpu: 2, memoryBytes: 512 * MiB },
    diskFingerprint: async (host, vm, disk) => sector0Magic(path.join(host.config.localDir, vm.id, `${disk.name}.qcow2`)),
    reopenDriver: async (host) => {
      await host.driver.close();
      return LibvirtDriver.open(host.config, { ...driverOptions, socketPath: (host.driver as LibvirtDriver).socketPath });
    },
  },
);
