import { candidatePorts } from '../../../../src/drivers/qemu/ports';
import { QmpLineDecoder } from '../../../../src/drivers/qemu/qmp';
import { lastHeartbeat } from '../../../../src/drivers/common/serialLog';

test('the heartbeat is the last counter the guest printed', () => {
  expect(lastHeartbeat('vmove-boot disk_previous=0\nvmove-heartbeat 1 cpus=1\nkernel noise\nvmove-heartbeat 2 cpus=1\nvmove-heart')).toBe(2);
  expect(lastHeartbeat('booting...')).toBeUndefined();
});

test('QMP messages are split on line ends, across chunks', () => {
  const d = new QmpLineDecoder();
  expect(d.push('{"QMP": {"version": {}}}\r\n{"return"')).toEqual([{ QMP: { version: {} } }]);
  expect(d.push(': {}, "id": "vmove-1"}\r\n\r\n{"event": "STOP", "data": {}}\r\n')).toEqual([{ return: {}, id: 'vmove-1' }, { event: 'STOP', data: {} }]);
});

test('ports come from the host range, skipping those promised to other incoming VMs', () => {
  expect(candidatePorts([49152, 49155], new Set([49153]))).toEqual([49152, 49154, 49155]);
  expect(() => candidatePorts([5000, 4000], new Set())).toThrow(/invalid/);
});
