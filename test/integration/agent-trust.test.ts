// The controller trusts an agent only when its certificate (from the local vmove CA) names the node
// it means to call: node-c's agent presenting node-a's certificate gets nothing — the move waits
// with an AgentNotTrusted Event, the VM stays untouched on its source. Plaintext migration only
// on request (spec.policy.insecureMigration, Live/Auto only), and then the history says so.
import { moveYaml, startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(240_000);

let env: VmoveEnv;

beforeAll(async () => {
  env = await startVmoveEnv({ nodes: ['node-a', 'node-b', { name: 'node-c', tlsDirOf: 'node-a' }] });
});

afterAll(async () => {
  await env?.stop();
});

async function moveEvents(name: string): Promise<{ reason: string; message: string; type: string }[]> {
  const r = await env.kubectl(['get', 'events', '-n', 'default', '--field-selector', `involvedObject.kind=MoveRequest,involvedObject.name=${name}`, '-o', 'json']);
  return (JSON.parse(r.stdout) as { items: { reason: string; message: string; type: string }[] }).items;
}

test("an agent presenting another node's certificate is refused: Event on the move, which waits; the VM is untouched", async () => {
  await env.apply(vmYaml('guarded', { node: 'node-a' }));
  await env.waitFor('guarded running', async () => (await env.vm('guarded'))?.status?.phase === 'Running');
  await env.apply(moveYaml('guarded-to-c', 'guarded', { mode: 'Live', target: { nodeName: 'node-c' } }));
  const refused = await env.waitFor('an AgentNotTrusted event', async () => (await moveEvents('guarded-to-c')).find((e) => e.reason === 'AgentNotTrusted'));
  expect(refused.type).toBe('Warning');
  expect(refused.message).toMatch(/did not send prepareIncoming to node-c: .*does not name node node-c \(it names DNS:node-a/);
  const mr = await env.move('guarded-to-c');
  expect(mr?.status?.phase).toBe('PreparingTarget');
  const vm = await env.vm('guarded');
  expect(vm?.status).toMatchObject({ phase: 'Moving', nodeName: 'node-a' });
  const inventory = await env.hostInventory();
  expect(inventory.get('node-a')?.find((v) => v.id === 'default_guarded')?.state).toBe('Running');
  // Nothing reached node-c: the client refused its certificate before sending, so the fleet's own
  // (trusting) look at node-c fails the same way and shows no copy there.
  expect(inventory.get('node-c')).toBeUndefined();
});

test('a live move between trusted agents; insecureMigration is recorded in its history', async () => {
  await env.apply(vmYaml('plain', { node: 'node-b' }));
  await env.waitFor('plain running', async () => (await env.vm('plain'))?.status?.phase === 'Running');
  // From node-b (node-a's VM is held by the waiting move above) to node-a.
  await env.apply(moveYaml('plain-to-a', 'plain', { mode: 'Live', target: { nodeName: 'node-a' }, policy: { insecureMigration: true } }));
  const done = await env.waitForMove('plain-to-a', ['Succeeded'], 120_000);
  const prepared = done.status?.history?.find((h) => h.phase === 'PreparingTarget');
  expect(prepared?.message).toMatch(/migration stream: plaintext, as spec\.policy\.insecureMigration/);
  // And a move without it says TLS.
  await env.apply(moveYaml('plain-back', 'plain', { mode: 'Live', target: { nodeName: 'node-b' } }));
  const back = await env.waitForMove('plain-back', ['Succeeded'], 120_000);
  expect(back.status?.history?.find((h) => h.phase === 'PreparingTarget')?.message).toMatch(/migration stream: TLS required/);
});

test('insecureMigration is refused at admission for a mode that does not stream', async () => {
  const r = await env.kubectl(['apply', '-f', '-'], moveYaml('plain-cold', 'plain', { mode: 'Cold', policy: { insecureMigration: true } }));
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/spec\.policy\.insecureMigration.*only allowed with mode Live or Auto/);
});
