// The agent's address on a dedicated migration network, chosen from the host's interfaces.
import { networkInterfaces } from 'node:os';
import { migrationAddressIn, parseCidr, type InterfaceTable } from '../../../src/agent/migrationNetwork';

const v4 = (address: string, prefix: number) => ({ address, family: 'IPv4' as const, cidr: `${address}/${prefix}` });
const v6 = (address: string, prefix: number) => ({ address, family: 'IPv6' as const, cidr: `${address}/${prefix}` });

const host: InterfaceTable = {
  lo: [v4('127.0.0.1', 8), v6('::1', 128)],
  eth0: [v4('192.168.10.21', 24), v6('fe80::a00:27ff:fe4e:66a1', 64)],
  eth1: [v4('10.20.0.21', 16), v6('fd00:20::21', 64)],
};

test('the address of the interface inside the network is the migration address', () => {
  expect(migrationAddressIn('10.20.0.0/16', host)).toBe('10.20.0.21');
  expect(migrationAddressIn('192.168.10.0/24', host)).toBe('192.168.10.21');
  expect(migrationAddressIn('fd00:20::/64', host)).toBe('fd00:20::21');
  expect(migrationAddressIn('10.20.0.21/32', host)).toBe('10.20.0.21');
});

test('a network no interface is in is a start-up error that lists what the host has', () => {
  expect(() => migrationAddressIn('10.30.0.0/16', host)).toThrow(
    '--migration-cidr 10.30.0.0/16: no interface of this host has an address in it (addresses: lo 127.0.0.1/8, lo ::1/128, eth0 192.168.10.21/24, eth0 fe80::a00:27ff:fe4e:66a1/64, eth1 10.20.0.21/16, eth1 fd00:20::21/64)',
  );
  // An IPv4 network never matches an IPv6 address with the same leading bits, nor the reverse.
  expect(() => migrationAddressIn('::/0', { eth0: [v4('10.0.0.1', 8)] })).toThrow(/no interface/);
});

test('several addresses inside: the same one at every start (by interface, then address)', () => {
  const two: InterfaceTable = { eth2: [v4('10.20.0.9', 16)], eth1: [v4('10.20.0.30', 16), v4('10.20.0.21', 16)] };
  expect(migrationAddressIn('10.20.0.0/16', two)).toBe('10.20.0.21');
});

test('what is not a network says how one is written', () => {
  for (const bad of ['10.20.0.0', '10.20.0.0/33', 'fd00::/129', 'eth1', '10.20.0/16', '']) {
    expect(() => parseCidr(bad)).toThrow(/--migration-cidr: a network such as 10\.20\.0\.0\/16/);
  }
});

test('this machine: its loopback network gives its loopback address', () => {
  expect(migrationAddressIn('127.0.0.0/8', networkInterfaces() as InterfaceTable)).toBe('127.0.0.1');
});
