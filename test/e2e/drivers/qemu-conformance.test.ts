// The qemu driver passes the driver conformance battery (through real agents), on real QEMU
// under TCG with vmove's test guest.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { HostConfig } from '../../../src/drivers/driver';
import { QemuDriver, type QemuDriverOptions } from '../../../src/drivers/qemu';
import { describeDriverConformance, type ConformanceHost } from '../../support/driverConformance';

const MiB = 1024 * 1024;
const imageDir = execFileSync(path.resolve(__dirname, '../../../hack/build-guest.sh'), { encoding: 'utf8' }).trim();
const driverOptions: QemuDriverOptions = { accelerator: 'tcg', shutdownTimeoutMs: 10_000 };

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

/** The guest's disk counter sits in sector 0: a disk the guest has used carries its magic, a fresh one does not. */
function sector0Magic(file: string): string {
  const dump = execFileSync('qemu-io', ['-r', '-U', '-f', 'qcow2', '-c', 'read -v 0 16', file], { encoding: 'utf8' });
  return dump.split('\n')[0]!.replace(/^[0-9a-f]+:\s+/, '').slice(0, 47);
}

describeDriverConformance(
  'qemu',
  async (workDir) => {
    const base = 49400 + (process.pid % 50) * 10;
    const hosts: [ConformanceHost, ConformanceHost] = [
      { config: hostConfig(workDir, 'qa', [base, base + 4]), driver: undefined as never },
      { config: hostConfig(workDir, 'qb', [base + 5, base + 9]), driver: undefined as never },
    ];
    for (const h of hosts) h.driver = new QemuDriver(h.config, driverOptions);
    return {
      hosts,
      image: path.basename(imageDir),
      cleanup: async () => {
        await Promise.all(hosts.map((h) => h.driver.close()));
      },
    };
  },
  {
    bootMs: 40_000,
    migrationMs: 60_000,
    operationMs: 30_000,
    verifyWindowMs: 3_000,
    memoryBytes: 256 * MiB,
    diskBytes: 64 * MiB,
    kernelArgs: 'vmove.disk_counter=1',
    hotplug: { cpu: 2, memoryBytes: 512 * MiB },
    diskFingerprint: async (host, vm, disk) => sector0Magic(path.join(host.config.localDir, vm.id, `${disk.name}.qcow2`)),
    reopenDriver: async (host) => {
      await host.driver.close();
      return new QemuDriver(host.config, driverOptions);
    },
  },
);
