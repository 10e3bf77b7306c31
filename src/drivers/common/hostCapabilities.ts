// What every driver of this project advertises the same way: capacity and storage come from the
// host's configuration; live and block migration and hotplug are supported by all three drivers.
import type { DriverKind, HostCapabilities } from '../../protocol/host';
import type { HostConfig } from '../driver';

export function hostCapabilities(host: HostConfig, driver: DriverKind, accelerator: string): HostCapabilities {
  return {
    driver,
    storage: [...host.storage],
    cpu: host.capacity.cpu,
    memoryBytes: host.capacity.memoryBytes,
    liveMigration: true,
    blockMigration: true,
    hotplug: true,
    migrationAddress: host.migrationAddress,
    accelerator,
  };
}
