// Which address of this host incoming migrations are sent to, when the agent is given a network
// (`--migration-cidr`) rather than an address: the host's address inside that network. Pure, over
// the interface table Node's os.networkInterfaces() returns, so the choice is testable.
import { isIP } from 'node:net';

export interface InterfaceAddress {
  address: string;
  family: 'IPv4' | 'IPv6';
  cidr: string | null;
}
export type InterfaceTable = Record<string, InterfaceAddress[] | undefined>;

interface Network {
  family: 'IPv4' | 'IPv6';
  bits: bigint;
  prefix: number;
}

/** Parses "10.20.0.0/16" or "fd00:20::/64"; throws a message that names the flag. */
export function parseCidr(cidr: string): Network {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
  const version = m ? isIP(m[1]!) : 0;
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || version === 0 || prefix > (version === 4 ? 32 : 128)) {
    throw new Error(`--migration-cidr: a network such as 10.20.0.0/16 or fd00:20::/64, got "${cidr}"`);
  }
  return { family: version === 4 ? 'IPv4' : 'IPv6', bits: addressBits(m[1]!), prefix };
}

function addressBits(address: string): bigint {
  if (isIP(address) === 4) return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
  // IPv6: expand "::", then 8 groups of 16 bits (an embedded IPv4 tail counts as two groups).
  let text = address.replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = addressBits(v4[1]!);
    text = text.slice(0, -v4[1]!.length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function contains(net: Network, address: string, family: string): boolean {
  if (family !== net.family) return false;
  const width = net.family === 'IPv4' ? 32 : 128;
  const shift = BigInt(width - net.prefix);
  return addressBits(address) >> shift === net.bits >> shift;
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
    .filter((a) => contains(net, a.address, a.family))
    .sort((x, y) => x.name.localeCompare(y.name) || x.address.localeCompare(y.address));
  if (inside[0]) return inside[0].address;
  const have = all.map((a) => `${a.name} ${a.cidr ?? a.address}`).join(', ') || 'none';
  throw new Error(`--migration-cidr ${cidr}: no interface of this host has an address in it (addresses: ${have})`);
}
