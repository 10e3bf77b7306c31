// The libvirt driver passes the driver conformance battery (through real agents), each host with
// its own sandboxed libvirtd (LibvirtDriverOptions.sandbox) on this machine, running vmove's
// test guest under TCG.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { HostConfig } from '../../../src/drivers/driver';
import { LibvirtDriver, type LibvirtDriverOptions } from '../../../src/drivers/libvirt';
import { stopSandbox } from '../../../src/drivers/libvirt/sandbox';
import { describeDriverConformance, type ConformanceHost } from '../../support/driverConformance';

const MiB = 1024 * 1024;
const imageDir = execFileSync(path.resolve(__dirname, '../../../hack/build-guest.sh'), { encoding: 'utf8' }).trim();
const driverOptions: LibvirtDriverOptions = { accelerator: 'tcg', shutdownTimeoutMs: 10_000, sandbox: true };

function hostConfig(workDir: string, node: string, ports: [number, number]): HostConfig {
  return {
    nodeName: node,
    stateDir: path.join(workDir, node, 'state'),
    localDir: path.join(workDir, node, 'local'),
    sharedDir: path.join(workDir, 'shared'),
    imagesDir: path.dirname(imageDir),
    migrationAddress: '127.0.0.1',
    migrationPorts: ports,
    capacity: { cpu: 2, memoryBytes: 4096 * MiB },
    storage: ['Local', 'SharedFile'],
  };
}

/** The guest's disk counter sits in sector 0 behind a magic: a disk the guest has used carries it, a fresh one does not. */
function sector0Magic(file: string): string {
  const dump = execFileSync('qemu-io', ['-r', '-U', '-f', 'qcow2', '-c', 'read -v 0 16', file], { encoding: 'utf8' });
  return dump.split('\n')[0]!.replace(/^[0-9a-f]+:\s+/, '').slice(0, 47);
}

describeDriverConformance(
  'libvirt',
  async (workDir) => {
    const base = 50000 + (process.pid % 20) * 20;
    const configs = [hostConfig(workDir, 'la', [base, base + 9]), hostConfig(workDir, 'lb', [base + 10, base + 19])];
    const hosts = await Promise.all(configs.map(async (config): Promise<ConformanceHost> => ({ config, driver: await LibvirtDriver.open(config, driverOptions) })));
    return {
      hosts: [hosts[0]!, hosts[1]!],
      image: path.basename(imageDir),
      cleanup: async () => {
        await Promise.all(hosts.map((h) => h.driver.close()));
        for (const c of configs) await stopSandbox(c.nodeName, path.join(c.stateDir, 'libvirtd'), { killGuests: true });
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
    // The sandbox is started again (it runs already: nothing happens) and the driver re-adopts.
    reopenDriver: async (host) => {
      await host.driver.close();
      return LibvirtDriver.open(host.config, driverOptions);
    },
  },
);
