export { SimDriver, createSimImage } from './simDriver';
export { DEFAULT_SIM_OPTIONS, simOptions, type SimDriverOptions } from './options';
export { SIM_ANNOTATIONS, DEFAULT_GUEST, type GuestDefaults } from './guest';
export { readSimDiskHeader, simDiskPath, type SimDiskHeader } from './simDisk';
