// Who may call the agent: the decision table, bearer parsing, the shared secret, and what a
// caller sees over HTTP.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type RunningAgent } from '../../../src/agent/agent';
import { DEFAULT_ALLOWED, SHARED_SECRET_USERNAME, SharedSecretAuthenticator, authorize, bearerToken } from '../../../src/agent/auth';
import { SimDriver } from '../../../src/drivers/sim';

const controller = { username: 'system:serviceaccount:vmove-system:vmove-controller' };
const agent = { username: 'system:serviceaccount:vmove-system:vmove-agent' };
const stranger = { username: 'system:serviceaccount:default:default' };

describe('authorize', () => {
  test.each([
    [undefined, 'controller', 'unauthenticated'],
    [undefined, 'diskRead', 'unauthenticated'],
    [controller, 'controller', 'allow'],
    [controller, 'diskRead', 'allow'],
    [agent, 'diskRead', 'allow'],
    [agent, 'controller', 'forbidden'],
    [stranger, 'diskRead', 'forbidden'],
    [stranger, 'controller', 'forbidden'],
  ] as const)('%o calling a %s route: %s', (identity, access, decision) => {
    expect(authorize(identity, access, DEFAULT_ALLOWED)).toBe(decision);
  });

  test('configured identities replace the defaults', () => {
    const allowed = { controller: ['ops'], agent: ['peer'] };
    expect(authorize(controller, 'controller', allowed)).toBe('forbidden');
    expect(authorize({ username: 'ops' }, 'controller', allowed)).toBe('allow');
    expect(authorize({ username: 'peer' }, 'diskRead', allowed)).toBe('allow');
  });
});

test('bearerToken reads only a well-formed Bearer header', () => {
  expect(bearerToken('Bearer abc.def')).toBe('abc.def');
  expect(bearerToken('bearer abc')).toBe('abc');
  expect(bearerToken('Basic abc')).toBeUndefined();
  expect(bearerToken('Bearer')).toBeUndefined();
  expect(bearerToken('Bearer a b')).toBeUndefined();
  expect(bearerToken(undefined)).toBeUndefined();
});

test('the shared secret authenticates exactly the secret', async () => {
  const auth = new SharedSecretAuthenticator('s3cret-s3cret-s3cret');
  expect(await auth.authenticate('s3cret-s3cret-s3cret')).toEqual({ username: SHARED_SECRET_USERNAME });
  expect(await auth.authenticate('s3cret-s3cret-s3cre')).toBeUndefined();
  expect(await auth.authenticate('')).toBeUndefined();
  expect(() => new SharedSecretAuthenticator('short')).toThrow(/16/);
});

describe('over HTTP (shared-secret mode)', () => {
  const secret = 'unit-test-secret-0123456789';
  let work: string;
  let driver: SimDriver;
  let running: RunningAgent;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'vmove-auth-'));
    const host = {
      nodeName: 'auth-node',
      stateDir: join(work, 'state'),
      localDir: join(work, 'local'),
      sharedDir: join(work, 'shared'),
      imagesDir: join(work, 'images'),
      migrationAddress: '127.0.0.1',
      migrationPorts: [26000, 26004] as [number, number],
      capacity: { cpu: 2, memoryBytes: 2 ** 32 },
      storage: ['Local' as const],
    };
    driver = await SimDriver.open(host);
    running = await startAgent({ host, driver, auth: { mode: 'shared-secret', secret }, insecureHttp: true });
  });

  afterAll(async () => {
    await running.stop();
    await driver.close();
    await rm(work, { recursive: true, force: true });
  });

  const get = (path: string, token?: string) => fetch(`${running.endpoint}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  test('no token: 401 with a Bearer challenge', async () => {
    const res = await get('/v1/vms');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await res.json()).toEqual({ error: { message: 'bearer token required', transient: false } });
  });

  test('a wrong token: 401', async () => {
    expect((await get('/v1/vms', 'not-the-secret')).status).toBe(401);
    expect((await get('/v1/disks/default_x/root', 'not-the-secret')).status).toBe(401);
  });

  test('the secret: 200', async () => {
    const res = await get('/v1/vms', secret);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([]);
  });

  test('health needs no token; unknown routes are 404, wrong methods 405', async () => {
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/v1/nothing', secret)).status).toBe(404);
    expect((await fetch(`${running.endpoint}/v1/vms`, { method: 'DELETE', headers: { authorization: `Bearer ${secret}` } })).status).toBe(405);
  });
});
