// The agent's /metrics over a real agent on a sim host: served without a token, and counting what
// a caller does — operations by kind and result, driver errors, refused requests, VMs by state.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type RunningAgent } from '../../../src/agent/agent';
import { AgentClient } from '../../../src/agent/client';
import { SimDriver, createSimImage } from '../../../src/drivers/sim';
import type { VmSpec } from '../../../src/protocol/vm';

const secret = 'metrics-test-secret-0123456789';
const client = new AgentClient({ token: () => secret, timeoutMs: 5_000 });
const spec: VmSpec = { id: 'default_m1', uid: 'uid-m1', image: 'tiny', cpu: 1, memoryBytes: 256 * 2 ** 20, disks: [] };

let work: string;
let driver: SimDriver;
let agent: RunningAgent;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vmove-agent-metrics-'));
  const host = {
    nodeName: 'metrics-node',
    stateDir: join(work, 'state'),
    localDir: join(work, 'local'),
    sharedDir: join(work, 'shared'),
    imagesDir: join(work, 'images'),
    migrationAddress: '127.0.0.1',
    migrationPorts: [26200, 26204] as [number, number],
    capacity: { cpu: 2, memoryBytes: 2 ** 32 },
    storage: ['Local' as const],
  };
  await createSimImage(host.imagesDir, 'tiny');
  driver = await SimDriver.open(host, { timeScale: 10 });
  // Plain HTTP: this test is about what /metrics counts; the TLS channel has its own tests.
  agent = await startAgent({ host, driver, auth: { mode: 'shared-secret', secret }, insecureHttp: true });
});

afterAll(async () => {
  await agent.stop();
  await driver.close();
  await rm(work, { recursive: true, force: true });
});

/** The samples of a scrape: `name{labels} value` lines. */
async function scrape(headers: Record<string, string> = {}): Promise<{ status: number; lines: string[] }> {
  const res = await fetch(`${agent.endpoint}/metrics`, { headers });
  return { status: res.status, lines: (await res.text()).split('\n').filter((l) => l && !l.startsWith('#')) };
}

test('/metrics needs no token and counts operations, driver errors, refusals and VMs', async () => {
  expect(await client.putOperation(agent.endpoint, 'm-create', { kind: 'ensureVm', vm: spec, disks: 'keep', start: true }, { waitMs: 10_000 })).toMatchObject({ state: 'Succeeded' });
  expect(await client.putOperation(agent.endpoint, 'm-start-missing', { kind: 'startVm', vm: { ...spec, id: 'default_missing', uid: 'uid-x' } }, { waitMs: 10_000 })).toMatchObject({ state: 'Failed' });
  expect((await fetch(`${agent.endpoint}/v1/vms`)).status).toBe(401);
  expect((await fetch(`${agent.endpoint}/v1/vms`, { headers: { authorization: 'Bearer not-the-secret' } })).status).toBe(401);

  const { status, lines } = await scrape();
  expect(status).toBe(200);
  expect(lines).toEqual(
    expect.arrayContaining([
      'vmove_agent_operations_total{kind="ensureVm",result="Succeeded"} 1',
      'vmove_agent_operations_total{kind="startVm",result="Failed"} 1',
      'vmove_agent_operation_duration_seconds_count{kind="ensureVm",result="Succeeded"} 1',
      'vmove_agent_operations_in_flight{kind="ensureVm"} 0',
      'vmove_agent_driver_errors_total{driver="sim",kind="startVm"} 1',
      'vmove_agent_auth_refusals_total{code="401",reason="NoToken"} 1',
      'vmove_agent_auth_refusals_total{code="401",reason="InvalidToken"} 1',
      'vmove_agent_vms{state="Running"} 1',
      'vmove_agent_vms{state="Stopped"} 0',
    ]),
  );
});
