// One valid OperationRequest of every kind, as the controller sends them, for tests that check
// what the agent accepts and refuses (the validator's unit test, the agent API fuzz test).
import type { OperationKind, OperationRequest } from '../../src/protocol/operations';
import type { VmSpec } from '../../src/protocol/vm';

const MiB = 2 ** 20;

export function sampleVm(id = 'default_sample', uid = '6c1f2b4e-0d5a-4d8e-9a51-7b2f0c3e1a90'): VmSpec {
  return {
    id,
    uid,
    image: 'testguest',
    cpu: 1,
    memoryBytes: 256 * MiB,
    disks: [
      { name: 'root', sizeBytes: 1024 * MiB, storage: 'SharedFile' },
      { name: 'data', sizeBytes: 512 * MiB, storage: 'Local' },
    ],
    kernelArgs: 'console=ttyS0 quiet',
    annotations: { 'sim.vmove.dev/dirty-rate-mibps': '4' },
  };
}

const tuning = { bandwidthMiBps: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false, allowAutoConverge: true, allowPostCopy: false };

/** Every kind once, each with all of its optional fields set (so a mutation can reach them). */
export function sampleRequests(vm: VmSpec = sampleVm()): Record<OperationKind, OperationRequest> {
  return {
    ensureVm: { kind: 'ensureVm', vm, disks: 'keep', start: true },
    startVm: { kind: 'startVm', vm },
    stopVm: { kind: 'stopVm', vm },
    deleteVm: { kind: 'deleteVm', vm, deleteLocalDisks: true, deleteSharedDisks: false },
    prepareIncoming: { kind: 'prepareIncoming', vm: { ...vm, machine: '{"cpus":1,"dimms":[]}' }, blockMigration: true, tuning: { ...tuning, multifdChannels: 2 } },
    migrate: {
      kind: 'migrate',
      vm,
      blockMigration: true,
      tuning,
      to: {
        migrationUri: 'tcp:127.0.0.1:49152',
        nbd: { host: '127.0.0.1', port: 49153, exports: { data: 'default_sample/data' } },
        tls: true,
        postCopy: false,
        multifdChannels: 0,
        libvirt: { peerUri: 'qemu+tcp://node-b.example/system', listenAddress: '10.0.0.2', disks: { root: '/var/lib/vmove/shared/default_sample/root.qcow2' }, serialLog: '/var/lib/vmove/state/default_sample.log' },
      },
    },
    abortMigration: { kind: 'abortMigration', vm },
    completeIncoming: { kind: 'completeIncoming', vm },
    resumeSource: { kind: 'resumeSource', vm },
    copyDisks: { kind: 'copyDisks', vm, from: { endpoint: 'https://10.0.0.1:8443' } },
    hotplug: { kind: 'hotplug', vm, cpu: 2, memoryBytes: 512 * MiB },
    verify: { kind: 'verify', vm, windowMs: 5_000, expectRunning: true, heartbeatAbove: 12 },
  };
}
