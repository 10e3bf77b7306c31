// The sim driver passes the driver conformance battery, through real agents.
import { join } from 'node:path';
import { SimDriver, createSimImage, readSimDiskHeader, simDiskPath, type SimDriverOptions } from '../../../../src/drivers/sim';
import type { HostConfig } from '../../../../src/drivers/driver';
import { describeDriverConformance, type ConformanceHost } from '../../../support/driverConformance';

const GiB = 1024 ** 3;
const simOpts: Partial<SimDriverOptions> = { timeScale: 10 };

function hostConfig(workDir: string, node: string, ports: [number, number]): HostConfig {
  return {
    nodeName: node,
    stateDir: join(workDir, node, 'state'),
    localDir: join(workDir, node, 'local'),
    sharedDir: join(workDir, 'shared'),
    imagesDir: join(workDir, 'images'),
    migrationAddress: '127.0.0.1',
    migrationPorts: ports,
    capacity: { cpu: 8, memoryBytes: 16 * GiB },
    storage: ['Local', 'SharedFile', 'SharedBlock'],
  };
}

describeDriverConformance(
  'sim',
  async (workDir) => {
    const base = 20000 + (process.pid % 2000) * 10;
    const open = async (config: HostConfig): Promise<ConformanceHost> => ({ config, driver: await SimDriver.open(config, simOpts) });
    const a = hostConfig(workDir, 'sim-a', [base, base + 4]);
    await createSimImage(a.imagesDir, 'tiny');
    const hosts: [ConformanceHost, ConformanceHost] = [await open(a), await open(hostConfig(workDir, 'sim-b', [base + 5, base + 9]))];
    return {
      hosts,
      image: 'tiny',
      cleanup: async () => {
        await Promise.all(hosts.map((h) => h.driver.close()));
      },
    };
  },
  {
    bootMs: 5_000,
    migrationMs: 10_000,
    operationMs: 5_000,
    verifyWindowMs: 1_000,
    hotplug: { cpu: 4, memoryBytes: 1 * GiB },
    diskFingerprint: async (host, vm, disk) => {
      const h = await readSimDiskHeader(simDiskPath(host.config, vm.id, disk));
      return h ? `${h.vmUid}/gen${h.generation}` : '';
    },
    reopenDriver: async (host) => {
      await host.driver.close();
      return SimDriver.open(host.config, simOpts);
    },
  },
);
