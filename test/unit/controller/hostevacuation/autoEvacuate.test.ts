import { hostsToRecover, recoveryName } from '../../../../src/controller/hostevacuation/autoEvacuate';
import { AUTO_EVACUATION_LABEL } from '../../../../src/controller/hostevacuation/names';
import type { HostFacts } from '../../../../src/controller/clusterView';
import { evacuation, host, vm } from './fixtures';

const NOW = Date.parse('2030-01-01T01:00:00Z');
/** Lease expired 120 s before NOW, at 00:58:00. */
const dead = (node: string, fenced: boolean): HostFacts => {
  const h = host(node, { fenced, ready: false });
  return { ...h, agent: { ...h.agent!, alive: false, expiredForSeconds: 120 } };
};
const made = (node: string, at: string, o: { phase?: 'Succeeded' | 'Evacuating'; auto?: boolean } = {}) => {
  const e = evacuation({ nodeName: node }, { name: `e-${node}-${at}`, uid: at, status: { phase: o.phase ?? 'Succeeded' } });
  e.metadata.creationTimestamp = at;
  if (o.auto) e.metadata.labels = { [AUTO_EVACUATION_LABEL]: 'true' };
  return e;
};

describe('hostsToRecover', () => {
  test('a dead, fenced host with VMs gets one evacuation; unfenced, alive or empty hosts get none', () => {
    const hosts = [dead('a', true), dead('b', false), host('c'), dead('d', true)];
    const vms = [vm('x', { node: 'a' }), vm('y', { node: 'b' }), vm('z', { node: 'c' })];
    expect(hostsToRecover(hosts, [], vms, 40, NOW)).toEqual([{ node: 'a', name: 'recover-a-1', why: 'the agent of a stopped renewing its Lease 120 s ago and its Node is not Ready' }]);
  });

  test('one evacuation per death: none while one runs or after one made since the lease expired; a new death gets the next name', () => {
    const vms = [vm('x', { node: 'a' })];
    expect(hostsToRecover([dead('a', true)], [made('a', '2030-01-01T00:59:00Z', { phase: 'Evacuating' })], vms, 40, NOW)).toEqual([]);
    expect(hostsToRecover([dead('a', true)], [made('a', '2030-01-01T00:59:00Z', { auto: true })], vms, 40, NOW)).toEqual([]);
    // An evacuation of an earlier death does not answer this one.
    const earlier = made('a', '2030-01-01T00:10:00Z', { auto: true });
    expect(hostsToRecover([dead('a', true)], [earlier], vms, 40, NOW)).toMatchObject([{ node: 'a', name: 'recover-a-2' }]);
  });

  test('names stay within 63 characters and unique per node', () => {
    const long = `${'n'.repeat(70)}.example.com`;
    const name = recoveryName(long, 3);
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^recover-n+-[0-9a-f]{8}-3$/);
    expect(recoveryName(`${'n'.repeat(70)}.example.org`, 3)).not.toBe(name);
  });
});
