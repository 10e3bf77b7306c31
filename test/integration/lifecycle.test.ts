// The inventory is real: a VirtualMachine's power state follows `running`, deleting it removes it
// from its host, a VM whose host's agent is gone shows Lost (and comes back when it returns),
// deleting an active MoveRequest cancels it first, and of two controllers only the leader acts.
import { moveYaml, startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(240_000);

let env: VmoveEnv;

beforeAll(async () => {
  env = await startVmoveEnv({ nodes: ['node-a', 'node-b'], nodeDefaults: { agentArgs: ['--sim-bandwidth-mibps', '50'] } });
});

afterAll(async () => {
  await env?.stop();
});

const phaseOf = async (name: string) => (await env.vm(name))?.status?.phase;
const hostState = async (name: string, node: string) => (await env.hostInventory()).get(node)?.find((v) => v.id === `default_${name}`)?.state;

test('running: false stops the VM on its host and true starts it again', async () => {
  await env.apply(vmYaml('pet', { node: 'node-a' }));
  await env.waitFor('pet running', async () => (await phaseOf('pet')) === 'Running');
  await env.apply(vmYaml('pet', { node: 'node-a', running: false }));
  await env.waitFor('pet stopped', async () => (await phaseOf('pet')) === 'Stopped');
  expect(await hostState('pet', 'node-a')).toBe('Stopped');
  await env.apply(vmYaml('pet', { node: 'node-a' }));
  await env.waitFor('pet running again', async () => (await phaseOf('pet')) === 'Running');
  expect(await env.runningOn('pet')).toEqual(['node-a']);
});

test('deleting a VM stops and undefines it on its host before the object goes', async () => {
  await env.apply(vmYaml('temp', { node: 'node-b', storage: 'Local' }));
  await env.waitFor('temp running', async () => (await phaseOf('temp')) === 'Running');
  expect((await env.kubectl(['delete', 'virtualmachine', 'temp', '--wait=true', '--timeout=60s'])).code).toBe(0);
  expect(await env.vm('temp')).toBeUndefined();
  expect(await hostState('temp', 'node-b')).toBeUndefined();
});

test('a VM whose agent is gone is Lost, and Running again when its agent returns', async () => {
  await env.apply(vmYaml('orphan', { node: 'node-b' }));
  await env.waitFor('orphan running', async () => (await phaseOf('orphan')) === 'Running');
  await env.fleet.kill(env.fleet.agents.get('node-b'));
  const lost = await env.waitFor('orphan Lost', async () => {
    const vm = await env.vm('orphan');
    return vm?.status?.phase === 'Lost' ? vm : undefined;
  }, 60_000);
  expect(lost.status?.conditions?.find((c) => c.type === 'HostReachable')).toMatchObject({ status: 'False', reason: 'AgentLost' });
  await env.fleet.restartAgent('node-b', { agentArgs: ['--sim-bandwidth-mibps', '50'] });
  await env.waitFor('orphan Running again', async () => (await phaseOf('orphan')) === 'Running', 60_000);
  expect(await env.runningOn('orphan')).toEqual(['node-b']);
});

test('deleting an active MoveRequest cancels it first: the VM stays on its source', async () => {
  await env.apply(vmYaml('mover', { node: 'node-a', memory: '2Gi' }));
  await env.waitFor('mover running', async () => (await phaseOf('mover')) === 'Running');
  await env.apply(moveYaml('mover-go', 'mover', { target: { nodeName: 'node-b' } }));
  await env.waitFor('mover migrating', async () => (await env.move('mover-go'))?.status?.phase === 'Migrating');
  const deleted = await env.kubectl(['delete', 'moverequest', 'mover-go', '--wait=true', '--timeout=90s']);
  expect(deleted.code).toBe(0);
  expect(await env.move('mover-go')).toBeUndefined();
  expect(await env.runningOn('mover')).toEqual(['node-a']);
  const vm = await env.vm('mover');
  expect(vm?.status?.moveRef).toBeUndefined();
  const events = await env.kubectl(['get', 'events', '--field-selector', 'involvedObject.name=mover-go', '-o', 'jsonpath={.items[*].message}']);
  expect(events.stdout).toContain('cancel requested during Migrating: rolling back');
});

test('two controllers: only the leader acts, and the other takes over when it dies', async () => {
  const first = env.fleet.controller!;
  const second = env.fleet.startController();
  env.fleet.controller = first;
  await new Promise((r) => setTimeout(r, 3_000));
  const lease = JSON.parse((await env.kubectl(['get', 'lease', '-n', 'vmove-system', 'vmove-controller', '-o', 'json'])).stdout) as { spec: { holderIdentity: string } };
  expect(lease.spec.holderIdentity).toMatch(new RegExp(`-${first.child.pid}$`));
  // The stand-by has not acted: it logged no reconcile and holds no lease.
  expect(env.logTail('controller', 400)).not.toContain(`"pid":${second.child.pid},"component":"moverequest"`);
  await env.fleet.kill(first, 'SIGKILL');
  env.fleet.controller = second;
  await env.waitFor('the stand-by to take the lease', async () => {
    const l = JSON.parse((await env.kubectl(['get', 'lease', '-n', 'vmove-system', 'vmove-controller', '-o', 'json'])).stdout) as { spec: { holderIdentity: string } };
    return l.spec.holderIdentity.endsWith(`-${second.child.pid}`);
  }, 40_000);
  await env.apply(moveYaml('after-failover', 'pet', { target: { nodeName: 'node-b' } }));
  expect((await env.waitForMove('after-failover', ['Succeeded', 'Failed'])).status?.phase).toBe('Succeeded');
});
