export { LibvirtDriver, type LibvirtDriverOptions } from './libvirtDriver';
export type { LibvirtEndpoint } from './migrationRecords';
export { startSandbox, startSandboxHost, stopSandbox, sandboxStatus, type LibvirtSandbox, type SandboxHost } from './sandbox';
