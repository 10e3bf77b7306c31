// The agent's HTTP edge in one process, over a real socket, sim driver and executor: what a
// refused request gets back (status, JSON message naming the field, Allow, connection closed
// unread), and that nothing of it is recorded.
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../../src/agent/client';
import { DEFAULT_ALLOWED, SHARED_SECRET_USERNAME, SharedSecretAuthenticator } from '../../../src/agent/auth';
import { OperationExecutor } from '../../../src/agent/operations';
import { createAgentServer } from '../../../src/agent/server';
import { SimDriver, createSimImage } from '../../../src/drivers/sim';
import type { HostConfig } from '../../../src/drivers/driver';
import { agentChannel, drained, type AgentChannel, type RawResponse } from '../../support/agentChannel';
import { sampleRequests, sampleVm } from '../../support/operationSamples';

const SECRET = 'unit-test-shared-secret';
const BODY_TIMEOUT_MS = 300;
let work: string;
let server: Server;
let driver: SimDriver;
let executor: OperationExecutor;
let channel: AgentChannel;
let stateDir: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vmove-agent-server-'));
  stateDir = join(work, 'state');
  await createSimImage(join(work, 'images'), 'testguest');
  const port = 25000 + (process.pid % 1000) * 5;
  const host: HostConfig = {
    nodeName: 'edge',
    stateDir,
    localDir: join(work, 'local'),
    sharedDir: join(work, 'shared'),
    imagesDir: join(work, 'images'),
    migrationAddress: '127.0.0.1',
    migrationPorts: [port, port + 4],
    capacity: { cpu: 8, memoryBytes: 16 * 2 ** 30 },
    storage: ['Local', 'SharedFile', 'SharedBlock'],
  };
  driver = await SimDriver.open(host, { timeScale: 10 });
  const peers = new AgentClient({ token: () => SECRET });
  executor = await OperationExecutor.open({ driver, stateDir, pollMs: 20, fetchDisk: (ep, vm, disk, signal) => peers.readDisk(ep, vm, disk, signal) });
  server = createAgentServer({
    executor,
    driver,
    authenticator: new SharedSecretAuthenticator(SECRET),
    allowed: { ...DEFAULT_ALLOWED, controller: [...DEFAULT_ALLOWED.controller, SHARED_SECRET_USERNAME] },
    bodyLimits: { timeoutMs: BODY_TIMEOUT_MS },
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  channel = agentChannel(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { token: SECRET });
});

afterAll(async () => {
  channel?.close();
  await executor?.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await driver?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

const json = { 'content-type': 'application/json' };
const startVm = JSON.stringify(sampleRequests(sampleVm('default_edge')).startVm);
const answered = (r: RawResponse) => {
  if (!r.answered) throw new Error(`no answer: ${r.error}`);
  return r;
};
const recorded = (opId: string) => existsSync(join(stateDir, 'operations', `${opId}.json`));

test('a broken field: 400 with the field named, in the message and in problems; nothing recorded', async () => {
  const body = { ...JSON.parse(startVm), vm: { ...sampleVm('default_edge'), cpu: 0, disks: [{ name: '../root', sizeBytes: 1, storage: 'Local' }] } };
  const res = answered(await channel.request({ method: 'PUT', path: '/v1/operations/edge-1', headers: json, body: JSON.stringify(body) }));
  expect(res.status).toBe(400);
  expect(res.json).toEqual({
    error: { message: expect.stringMatching(/^invalid startVm request: vm\.cpu: must be an integer 1–1024 \(got 0\); vm\.disks\[0\]\.name: must be letters/), transient: false },
    problems: [
      { field: 'vm.cpu', message: 'must be an integer 1–1024 (got 0)' },
      { field: 'vm.disks[0].name', message: expect.stringMatching(/^must be letters, digits/) },
    ],
  });
  expect(recorded('edge-1')).toBe(false);
});

test('bad opIds, path names and queries: 400 naming them', async () => {
  const cases: [string, string][] = [
    ['/v1/operations/..%2Fescape', 'opId'],
    ['/v1/operations/-x', 'opId'],
    ['/v1/operations/a%E0%A4%A', 'opId'],
    ['/v1/operations/ok-id?waitMs=soon', 'query.waitMs'],
    ['/v1/operations/ok-id?force=1', 'query.force'],
  ];
  for (const [path, field] of cases) {
    const res = answered(await channel.request({ method: 'PUT', path, headers: json, body: startVm }));
    expect([path, res.status, (res.json as { problems: { field: string }[] }).problems.map((p) => p.field)]).toEqual([path, 400, [field]]);
  }
  const disk = answered(await channel.request({ method: 'GET', path: '/v1/disks/default_edge/..%2F..%2Fstate' }));
  expect([disk.status, disk.json]).toEqual([400, expect.objectContaining({ problems: [{ field: 'disk', message: expect.stringMatching(/^must be letters/) }] })]);
  expect(await readdir(join(stateDir, 'operations')).catch(() => [])).toEqual([]);
});

test('not JSON, or not said to be: 400 and 415', async () => {
  const bad = answered(await channel.request({ method: 'PUT', path: '/v1/operations/edge-2', headers: json, body: '{"kind":' }));
  expect([bad.status, (bad.json as { error: { message: string } }).error.message]).toEqual([400, expect.stringMatching(/^body: must be valid JSON/)]);
  const empty = answered(await channel.request({ method: 'PUT', path: '/v1/operations/edge-2', headers: json, body: '' }));
  expect(empty.status).toBe(400);
  const text = answered(await channel.request({ method: 'PUT', path: '/v1/operations/edge-2', headers: { 'content-type': 'text/plain' }, body: startVm }));
  expect([text.status, (text.json as { error: { message: string } }).error.message]).toEqual([415, 'content-type: must be application/json (got "text/plain")']);
  expect(recorded('edge-2')).toBe(false);
});

test('wrong method: 405 with Allow; unknown route: 404; a target that is not a plain path: 400', async () => {
  const del = answered(await channel.request({ method: 'DELETE', path: '/v1/operations/edge-3' }));
  expect([del.status, del.headers.allow]).toEqual([405, 'PUT, GET']);
  const post = answered(await channel.request({ method: 'POST', path: '/healthz' }));
  expect([post.status, post.headers.allow]).toEqual([405, 'GET']);
  expect(answered(await channel.request({ method: 'GET', path: '/v2/vms' })).status).toBe(404);
  expect(answered(await channel.request({ method: 'GET', path: '//evil/v1/vms' })).status).toBe(400);
});

test('a path the URL parser would rewrite ("\\", ".", "..") names no operation: 400, nothing recorded under the name it resolves to', async () => {
  for (const path of ['/v1/operations/.\\edge-r1', '/v1/operations/x/../edge-r1', '/v1/operations/./edge-r1', '/v1/operations/%2e/edge-r1']) {
    const res = answered(await channel.request({ method: 'PUT', path, headers: json, body: startVm }));
    expect([path, res.status, (res.json as { error: { message: string } }).error.message]).toEqual([path, 400, expect.stringMatching(/path must be canonical/)]);
  }
  expect(recorded('edge-r1')).toBe(false);
});

test('a body over 1 MiB: 413 from Content-Length before reading it, or once 1 MiB was read; the connection closes', async () => {
  const declared = answered(
    await channel.request({
      method: 'PUT',
      path: '/v1/operations/edge-4',
      headers: { ...json, 'content-length': String(64 * 2 ** 20) },
      // Only the start is sent: the answer must not wait for the rest.
      write: async (req, done) => {
        req.write(Buffer.alloc(1024, 0x20));
        await new Promise<void>((r) => (done() ? r() : req.once('response', () => r())));
      },
    }),
  );
  expect([declared.status, declared.headers.connection, (declared.json as { error: { message: string } }).error.message]).toEqual([413, 'close', `body: must be at most ${2 ** 20} bytes (Content-Length ${64 * 2 ** 20})`]);

  const streamed = answered(
    await channel.request({
      method: 'PUT',
      path: '/v1/operations/edge-5',
      headers: { ...json, 'transfer-encoding': 'chunked' },
      write: async (req, done) => {
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        for (let sent = 0; sent < 4 * 2 ** 20 && !done() && !req.destroyed; sent += chunk.length) {
          if (!req.write(chunk)) await drained(req);
        }
      },
    }),
  );
  expect([streamed.status, streamed.headers.connection]).toEqual([413, 'close']);
  expect(recorded('edge-4') || recorded('edge-5')).toBe(false);
});

test('a body that does not arrive in time: 408, the connection closes, nothing recorded', async () => {
  const res = answered(
    await channel.request({
      method: 'PUT',
      path: '/v1/operations/edge-6',
      headers: { ...json, 'content-length': String(Buffer.byteLength(startVm)) },
      write: async (req, done) => {
        req.write(startVm.slice(0, 10));
        await new Promise<void>((r) => (done() ? r() : req.once('response', () => r())));
      },
    }),
  );
  expect([res.status, res.headers.connection, (res.json as { error: { message: string } }).error.message]).toEqual([408, 'close', `body: must arrive within ${BODY_TIMEOUT_MS} ms`]);
  expect(recorded('edge-6')).toBe(false);
});

test('a valid request still runs, on a connection kept alive', async () => {
  const create = { kind: 'ensureVm', vm: sampleVm('default_edge'), disks: 'fresh', start: true };
  const res = answered(await channel.request({ method: 'PUT', path: '/v1/operations/edge-ok?waitMs=5000', headers: json, body: JSON.stringify(create) }));
  expect([res.status, res.headers.connection, res.json]).toEqual([200, 'keep-alive', expect.objectContaining({ opId: 'edge-ok', state: 'Succeeded' })]);
  expect(recorded('edge-ok')).toBe(true);
});
