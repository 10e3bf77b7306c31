export { LibvirtDriver, type LibvirtDriverOptions, type LibvirtEndpoint } from './libvirtDriver';
export { startSandbox, startSandboxHost, stopSandbox, sandboxStatus, type LibvirtSandbox, type SandboxHost } from './sandbox';
