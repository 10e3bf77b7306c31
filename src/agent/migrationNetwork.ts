// Which address of this host incoming migrations are sent to, when the agent is given a network
// (`--migration-cidr`) rather than an address: the host's address inside that network. Pure, over
// the interface table Node's os.networkInterfaces() returns, so the choice is testable.
import { BlockList, isIP } from 'node:net';

export interface InterfaceAddress {
  address: string;
  family: 'IPv4' | 'IPv6';
  cidr: string | null;
}
export type InterfaceTable = Record<string, InterfaceAddress[] | undefined>;

/** Parses "10.20.0.0/16" or "fd00:20::/64" into Node's own subnet matcher; throws a message that names the flag. */
export function parseCidr(cidr: string): { family: 'IPv4' | 'IPv6'; subnet: BlockList } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
  const version = m ? isIP(m[1]!) : 0;
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || version === 0 || prefix > (version === 4 ? 32 : 128)) {
    throw new Error(`--migration-cidr: a network such as 10.20.0.0/16 or fd00:20::/64, got "${cidr}"`);
  }
  const subnet = new BlockList();
  subnet.addSubnet(m[1]!, prefix, version === 4 ? 'ipv4' : 'ipv6');
  return { family: version === 4 ? 'IPv4' : 'IPv6', subnet };
}

/**
 * This host's address in `cidr`: the first by interface name, then address, so every start picks
 * the same one. None is a start-up error listing what the host has — never a silent fallback to
 * another network, which would put migration streams on the API's network unnoticed.
 */
export function migrationAddressIn(cidr: string, interfaces: InterfaceTable): string {
  const net = parseCidr(cidr);
  const all = Object.entries(interfaces).flatMap(([name, addrs]) => (addrs ?? []).map((a) => ({ name, ...a })));
  const inside = all
    .filter((a) => a.family === net.family && net.subnet.check(a.address.replace(/%.*$/, ''), a.family === 'IPv4' ? 'ipv4' : 'ipv6'))
    .sort((x, y) => x.name.localeCompare(y.name) || x.address.localeCompare(y.address));
  if (inside[0]) return inside[0].address;
  const have = all.map((a) => `${a.name} ${a.cidr ?? a.address}`).join(', ') || 'none';
  throw new Error(`--migration-cidr ${cidr}: no interface of this host has an address in it (addresses: ${have})`);
}
