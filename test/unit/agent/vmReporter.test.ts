// What the agent writes into VirtualMachine.status for the VMs its host holds.
import { statusChanges } from '../../../src/agent/vmReporter';
import { parseVmId, type VmInfo } from '../../../src/protocol/vm';
import type { VirtualMachine, VirtualMachineStatus } from '../../../src/api/types';

const MiB = 1024 * 1024;

function vmObject(status: VirtualMachineStatus = {}, uid = 'uid-1'): VirtualMachine {
  return {
    apiVersion: 'vmove.dev/v1alpha1',
    kind: 'VirtualMachine',
    metadata: { name: 'web', namespace: 'prod', uid, resourceVersion: '7' },
    spec: { image: 'debian', cpu: 1, memory: '256Mi' },
    status,
  };
}

const info = (over: Partial<VmInfo> = {}): VmInfo => ({ id: 'prod_web', uid: 'uid-1', state: 'Running', cpu: 2, memoryBytes: 512 * MiB, heartbeat: 3, ...over });

test('a running VM: this node, Running, resources as running', () => {
  expect(statusChanges(vmObject(), info(), 'n1')).toEqual({ nodeName: 'n1', phase: 'Running', cpu: 2, memory: '512Mi' });
});

test('a running VM held by a move is Moving', () => {
  const vm = vmObject({ nodeName: 'n1', phase: 'Running', cpu: 2, memory: '512Mi', moveRef: { name: 'mv', uid: 'm1' } });
  expect(statusChanges(vm, info(), 'n1')).toEqual({ phase: 'Moving' });
});

test('nothing to write when the status already says it', () => {
  expect(statusChanges(vmObject({ nodeName: 'n1', phase: 'Running', cpu: 2, memory: '512Mi' }), info(), 'n1')).toBeUndefined();
});

test('after a live move, the target claims the VM', () => {
  const vm = vmObject({ nodeName: 'n1', phase: 'Moving', cpu: 2, memory: '512Mi', moveRef: { name: 'mv', uid: 'm1' } });
  expect(statusChanges(vm, info(), 'n2')).toEqual({ nodeName: 'n2' });
});

test.each(['Incoming', 'Migrated', 'Paused'] as const)('a VM %s here is left to the move controller', (state) => {
  expect(statusChanges(vmObject({ nodeName: 'n1', phase: 'Moving' }), info({ state }), 'n2')).toBeUndefined();
});

test('a stopped VM is reported by its own host only, and not while a move holds it', () => {
  expect(statusChanges(vmObject({ nodeName: 'n1', phase: 'Running' }), info({ state: 'Stopped' }), 'n1')).toEqual({ phase: 'Stopped' });
  // A definition left behind on the old host says nothing.
  expect(statusChanges(vmObject({ nodeName: 'n2', phase: 'Running' }), info({ state: 'Stopped' }), 'n1')).toBeUndefined();
  // Never placed yet: the scheduled node speaks.
  expect(statusChanges(vmObject({ scheduledNode: 'n1', phase: 'Pending' }), info({ state: 'Stopped' }), 'n1')).toEqual({ nodeName: 'n1', phase: 'Stopped' });
  expect(statusChanges(vmObject({ scheduledNode: 'n2' }), info({ state: 'Stopped' }), 'n1')).toBeUndefined();
  expect(statusChanges(vmObject({ nodeName: 'n1', phase: 'Moving', moveRef: { name: 'mv', uid: 'm1' } }), info({ state: 'Stopped' }), 'n1')).toBeUndefined();
});

test('a crashed guest on its host is Failed', () => {
  expect(statusChanges(vmObject({ nodeName: 'n1', phase: 'Running' }), info({ state: 'Crashed' }), 'n1')).toEqual({ phase: 'Failed' });
});

test('a VM of an earlier object with the same name is not reported', () => {
  expect(statusChanges(vmObject({}, 'uid-new'), info(), 'n1')).toBeUndefined();
});

test('VM ids map back to namespace and name', () => {
  expect(parseVmId('prod_web')).toEqual({ namespace: 'prod', name: 'web' });
  expect(parseVmId('kube-system_a.b-c')).toEqual({ namespace: 'kube-system', name: 'a.b-c' });
  expect(parseVmId('nounderscore')).toBeUndefined();
  expect(parseVmId('_x')).toBeUndefined();
  expect(parseVmId('x_')).toBeUndefined();
});
