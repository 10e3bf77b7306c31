// Followed operations: a reconcile sends its step without waiting, and the end of a running
// operation wakes its key instead of a worker sitting in the agent's long poll. Against a real
// agent (sim driver); the operation that runs is a verify of a guest that never heartbeats, which
// runs for exactly its window and then fails.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type RunningAgent } from '../../../src/agent/agent';
import { AgentClient } from '../../../src/agent/client';
import type { AgentOps } from '../../../src/controller/agentOps';
import { FollowedOperations } from '../../../src/controller/followedOperations';
import { SimDriver, createSimImage } from '../../../src/drivers/sim';
import { componentLogger } from '../../../src/log';
import type { OperationRequest } from '../../../src/protocol/operations';
import type { VmSpec } from '../../../src/protocol/vm';

const secret = 'followed-ops-secret-0123456789';
const client = new AgentClient({ token: () => secret, timeoutMs: 5_000 });
// A guest that takes an hour to boot: a verify of it runs its whole window, then fails.
const spec: VmSpec = { id: 'default_f1', uid: 'uid-f1', image: 'tiny', cpu: 1, memoryBytes: 256 * 2 ** 20, disks: [], annotations: { 'sim.vmove.dev/boot-seconds': '3600' } };
const verify = (windowMs: number): OperationRequest => ({ kind: 'verify', vm: spec, windowMs, expectRunning: true });
const WAIT_MS = 400;

let work: string;
let driver: SimDriver;
let agent: RunningAgent;

/**
 * FollowedOperations over the real client, counting what it sends (and, for one test, following
 * through a dead address), with the keys it wakes; stopped after each test.
 */
const made: FollowedOperations[] = [];
function followed(o: { deadFollow?: boolean; maxOpen?: number } = {}) {
  const calls = { put: 0, get: 0 };
  const agents: AgentOps = {
    putOperation: (t, id, req, w) => (calls.put++, client.putOperation(t, id, req, w)),
    getOperation: (t, id, w) => (calls.get++, client.getOperation(o.deadFollow ? 'http://127.0.0.1:1' : t, id, w)),
    listVms: (t) => client.listVms(t),
  };
  const ops = new FollowedOperations(agents, WAIT_MS, componentLogger('test'), o.maxOpen);
  made.push(ops);
  const keys: string[] = [];
  let waiter: ((k: string) => void) | undefined;
  ops.on({
    onChange: (k) => {
      keys.push(k);
      waiter?.(k);
      waiter = undefined;
    },
  });
  const wake = { keys, next: () => new Promise<string>((r) => (waiter = r)) };
  return { ops, calls, wake };
}

afterEach(() => {
  for (const ops of made.splice(0)) ops.stop();
});

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vmove-followed-'));
  const host = {
    nodeName: 'followed-node',
    stateDir: join(work, 'state'),
    localDir: join(work, 'local'),
    sharedDir: join(work, 'shared'),
    imagesDir: join(work, 'images'),
    migrationAddress: '127.0.0.1',
    migrationPorts: [26110, 26114] as [number, number],
    capacity: { cpu: 2, memoryBytes: 2 ** 32 },
    storage: ['Local' as const],
  };
  await createSimImage(host.imagesDir, 'tiny');
  driver = await SimDriver.open(host);
  agent = await startAgent({ host, driver, auth: { mode: 'shared-secret', secret }, insecureHttp: true });
  const st = await client.putOperation(agent.endpoint, 'f-create', { kind: 'ensureVm', vm: spec, disks: 'keep', start: true }, { waitMs: 10_000 });
  expect(st.state).toBe('Succeeded');
});

afterAll(async () => {
  await agent.stop();
  await driver.close();
  await client.close();
  await rm(work, { recursive: true, force: true });
});

test('a running step answers at once; its end wakes the key, and that look sends nothing', async () => {
  const { ops, calls, wake } = followed();
  const call = { key: 'default/move-1', target: agent.endpoint, opId: 'f-verify-1', request: () => verify(1_000) };
  const started = Date.now();
  expect((await ops.call(call)).state).toBe('Running');
  expect(Date.now() - started).toBeLessThan(WAIT_MS);
  // Looks at each wake until the operation ended: each takes what the follow brought.
  let last = 'Running';
  while (last === 'Running') {
    expect(await wake.next()).toBe('default/move-1');
    last = (await ops.call(call)).state;
  }
  expect(last).toBe('Failed');
  expect(calls.put).toBe(1);
  expect(calls.get).toBeGreaterThanOrEqual(2);
});

test('one long poll per operation, however often it is looked at', async () => {
  const { ops, calls, wake } = followed();
  const call = { key: 'default/move-2', target: agent.endpoint, opId: 'f-verify-2', request: () => verify(1_000) };
  for (let i = 0; i < 5; i++) expect((await ops.call(call)).state).toBe('Running');
  expect(calls.put).toBe(5);
  expect(calls.get).toBe(1);
  await wake.next();
});

test('at most so many long polls are open at once; the others follow in turn, and every one wakes its key', async () => {
  const { ops, calls, wake } = followed({ maxOpen: 2 });
  const keys = ['default/q-1', 'default/q-2', 'default/q-3', 'default/q-4'];
  for (const [i, key] of keys.entries()) await ops.call({ key, target: agent.endpoint, opId: `f-queued-${i}`, request: () => verify(300) });
  expect(calls.get).toBe(2);
  while (!keys.every((k) => wake.keys.includes(k))) await wake.next();
  expect(calls.get).toBe(4);
});

test('a long poll that fails still wakes the key, a moment later', async () => {
  const { ops, wake } = followed({ deadFollow: true });
  const call = { key: 'default/move-3', target: agent.endpoint, opId: 'f-verify-3', request: () => verify(1_000) };
  expect((await ops.call(call)).state).toBe('Running');
  expect(await wake.next()).toBe('default/move-3');
});

test('a running answer older than one wait is asked for again', async () => {
  const { ops, calls, wake } = followed();
  const call = { key: 'default/move-4', target: agent.endpoint, opId: 'f-verify-4', request: () => verify(3_000) };
  await ops.call(call);
  await wake.next();
  await new Promise((r) => setTimeout(r, WAIT_MS + 100));
  expect((await ops.call(call)).state).toBe('Running');
  expect(calls.put).toBe(2);
  await wake.next();
});

test('once stopped, nothing is woken', async () => {
  const { ops, wake } = followed();
  await ops.call({ key: 'default/move-5', target: agent.endpoint, opId: 'f-verify-5', request: () => verify(1_000) });
  ops.stop();
  await new Promise((r) => setTimeout(r, WAIT_MS + 200));
  expect(wake.keys).toEqual([]);
});
