// Driver factories by kind. The agent creates its driver only through `createDriver`, so a new
// driver is one factory line here. Kinds whose driver is not built in fail with a clear error.
import type { DriverKind } from '../protocol/host';
import type { Driver, HostConfig } from './driver';
import { LibvirtDriver, type LibvirtDriverOptions } from './libvirt';
import { QemuDriver, type QemuDriverOptions } from './qemu';
import { SimDriver, type SimDriverOptions } from './sim';

/** Per-driver settings; each driver reads its own key. */
export interface DriverOptions {
  sim?: Partial<SimDriverOptions>;
  qemu?: QemuDriverOptions;
  libvirt?: LibvirtDriverOptions;
}

export type DriverFactory = (host: HostConfig, options: DriverOptions) => Promise<Driver>;

const factories: Partial<Record<DriverKind, DriverFactory>> = {
  sim: (host, options) => SimDriver.open(host, options.sim),
  qemu: async (host, options) => new QemuDriver(host, options.qemu),
  libvirt: (host, options) => LibvirtDriver.open(host, options.libvirt),
};

export const DRIVER_KINDS: readonly DriverKind[] = ['sim', 'qemu', 'libvirt'];

export function isDriverKind(value: string): value is DriverKind {
  return (DRIVER_KINDS as readonly string[]).includes(value);
}

export async function createDriver(kind: DriverKind, host: HostConfig, options: DriverOptions = {}): Promise<Driver> {
  const factory = factories[kind];
  if (!factory) {
    const built = Object.keys(factories).join(', ');
    throw new Error(`driver "${kind}" is not built into this vmove (available: ${built})`);
  }
  return factory(host, options);
}
