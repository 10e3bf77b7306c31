export { QemuDriver, type QemuDriverOptions } from './qemuDriver';
