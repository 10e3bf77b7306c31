// Builders of host facts for placement and move-choice tests.
import type { HostFacts } from '../../../src/controller/clusterView';
import type { HostCapabilities } from '../../../src/protocol/host';

export const GiB = 2 ** 30;
export const MiB = 2 ** 20;

export function host(node: string, o: Partial<HostFacts> & { caps?: Partial<HostCapabilities>; alive?: boolean } = {}): HostFacts {
  const { caps, alive, ...rest } = o;
  return {
    node,
    labels: {},
    cordoned: false,
    fenced: false,
    ready: true,
    agent: {
      node,
      endpoint: `http://127.0.0.1/${node}`,
      alive: alive ?? true,
      expiredForSeconds: alive === false ? 60 : 0,
      capabilities: {
        driver: 'sim',
        storage: ['Local', 'SharedFile'],
        cpu: 8,
        memoryBytes: 16 * GiB,
        liveMigration: true,
        blockMigration: true,
        hotplug: true,
        migrationAddress: '127.0.0.1',
        accelerator: 'sim',
        ...caps,
      },
    },
    used: { cpu: 0, memoryBytes: 0 },
    heldByMoves: { cpu: 0, memoryBytes: 0 },
    inbound: 0,
    outbound: 0,
    ...rest,
  };
}
