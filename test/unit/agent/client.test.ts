// AgentClient: the controller must tell "agent unreachable" (try again) from "the agent said
// no" (a bug or a conflict) — and see operation failures as statuses, not exceptions.
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type RunningAgent } from '../../../src/agent/agent';
import { AgentClient, AgentRequestError, AgentUnreachableError } from '../../../src/agent/client';
import { isTransient } from '../../../src/agent/errors';
import type { VmSpec } from '../../../src/protocol/vm';
import { SimDriver, createSimImage } from '../../../src/drivers/sim';

const secret = 'client-test-secret-0123456789';
const client = new AgentClient({ token: () => secret, timeoutMs: 2_000 });
const spec: VmSpec = { id: 'default_c1', uid: 'uid-c1', image: 'tiny', cpu: 1, memoryBytes: 256 * 2 ** 20, disks: [] };

let work: string;
let driver: SimDriver;
let agent: RunningAgent;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vmove-client-'));
  const host = {
    nodeName: 'client-node',
    stateDir: join(work, 'state'),
    localDir: join(work, 'local'),
    sharedDir: join(work, 'shared'),
    imagesDir: join(work, 'images'),
    migrationAddress: '127.0.0.1',
    migrationPorts: [26100, 26104] as [number, number],
    capacity: { cpu: 2, memoryBytes: 2 ** 32 },
    storage: ['Local' as const],
  };
  await createSimImage(host.imagesDir, 'tiny');
  driver = await SimDriver.open(host, { timeScale: 10 });
  agent = await startAgent({ host, driver, auth: { mode: 'shared-secret', secret }, insecureHttp: true });
});

afterAll(async () => {
  await agent.stop();
  await driver.close();
  await rm(work, { recursive: true, force: true });
});

async function listen<S extends Server | TcpServer>(server: S): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('an operation that fails is a Failed status, not an exception', async () => {
  const st = await client.putOperation(agent.endpoint, 'c-start-missing', { kind: 'startVm', vm: spec }, { waitMs: 5_000 });
  expect(st).toMatchObject({ state: 'Failed', error: { transient: false } });
});

test('waitMs answers once the operation finished', async () => {
  const st = await client.putOperation(agent.endpoint, 'c-create', { kind: 'ensureVm', vm: spec, disks: 'keep', start: true }, { waitMs: 10_000 });
  expect(st.state).toBe('Succeeded');
  expect(await client.getOperation(agent.endpoint, 'c-create', { waitMs: 10_000 })).toEqual(st);
  expect((await client.listVms(agent.endpoint)).map((v) => v.id)).toContain(spec.id);
});

test('an unknown operation is undefined', async () => {
  expect(await client.getOperation(agent.endpoint, 'never-sent')).toBeUndefined();
});

test('a refusal (409 conflict, 400, 401) is an AgentRequestError, not transient', async () => {
  await client.putOperation(agent.endpoint, 'c-stop', { kind: 'stopVm', vm: spec }, { waitMs: 5_000 });
  const conflict = await client.putOperation(agent.endpoint, 'c-stop', { kind: 'startVm', vm: spec }).catch((e: unknown) => e);
  expect(conflict).toBeInstanceOf(AgentRequestError);
  expect(conflict).toMatchObject({ status: 409, transient: false });
  expect(isTransient(conflict)).toBe(false);
  const unauthorized = await new AgentClient({ token: () => 'wrong' }).listVms(agent.endpoint).catch((e: unknown) => e);
  expect(unauthorized).toMatchObject({ status: 401, transient: false });
});

test('nobody listening: AgentUnreachableError, transient', async () => {
  const server = createTcpServer();
  const url = await listen(server);
  server.close();
  await once(server, 'close');
  const err = await client.listVms(url).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(AgentUnreachableError);
  expect(isTransient(err)).toBe(true);
  expect((err as Error).message).toMatch(/ECONNREFUSED|refused/i);
});

test('an agent that accepts but never answers: AgentUnreachableError after the timeout', async () => {
  const silent = createTcpServer((socket) => socket.on('error', () => undefined));
  const url = await listen(silent);
  try {
    const err = await new AgentClient({ token: () => secret, timeoutMs: 200 }).listVms(url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentUnreachableError);
    expect((err as Error).message).toMatch(/no answer within 200 ms/);
  } finally {
    silent.close();
  }
});

test('a 503 (agent busy or shutting down) is transient', async () => {
  const busy = createServer((_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'agent is shutting down', transient: true } }));
  });
  const url = await listen(busy);
  try {
    const err = await client.putOperation(url, 'x', { kind: 'startVm', vm: spec }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentUnreachableError);
    expect(err).toMatchObject({ status: 503, transient: true, message: expect.stringMatching(/shutting down/) });
  } finally {
    busy.close();
  }
});
