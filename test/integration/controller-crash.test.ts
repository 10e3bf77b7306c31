// Crash safety: the controller is SIGKILLed at random moments while dozens of moves run, and
// restarted each time. Every move must still end, and every VM must run on exactly one host —
// the one its status names. State lives only in the API server; agent calls are idempotent.
import type { MoveRequest } from '../../src/api/types';
import { vmovePath } from '../../src/kube/paths';
import { moveYaml, startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(900_000);

const NODES = ['node-a', 'node-b', 'node-c', 'node-d'];
const VMS = 10;
const MOVES_PER_VM = 12;
// A stable identity: a restarted controller resumes its own lease at once, as a restarted
// container of the same pod would, instead of waiting 15 s for it to expire.
const CONTROLLER_ARGS = ['--identity', 'crash-test-controller'];

let env: VmoveEnv;

beforeAll(async () => {
  env = await startVmoveEnv({ nodes: NODES, controllerArgs: CONTROLLER_ARGS, nodeDefaults: { cpu: 32, memory: '64Gi' } });
});

afterAll(async () => {
  await env?.stop();
});

/** A deterministic pseudo-random sequence, so a failing run can be replayed. */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

test(`${VMS * MOVES_PER_VM} moves survive the controller being killed at random moments`, async () => {
  const rand = random(Number(process.env.VMOVE_CRASH_SEED ?? 7));
  const vms = Array.from({ length: VMS }, (_, i) => `vm-${i}`);
  await env.apply(vms.map((name, i) => vmYaml(name, { node: NODES[i % NODES.length]!, storage: i % 2 ? 'Local' : 'SharedFile' })).join('---\n'));
  await env.waitFor('all VMs running', async () => {
    for (const name of vms) if ((await env.vm(name))?.status?.phase !== 'Running') return false;
    return true;
  });

  // Each VM gets a chain of moves of every kind; requests for one VM run in order. Two resizes
  // of one VM are 2 or 4 rounds apart, so each asks for a size the VM does not have yet.
  const kinds = (round: number): Record<string, unknown>[] => [{}, { mode: 'Cold' }, { resources: { cpu: 2 + (round % 3) } }, { mode: 'Live' }, { resources: { cpu: 2 + (round % 3) } }, { mode: 'Rebuild' }];
  const docs: string[] = [];
  for (let round = 0; round < MOVES_PER_VM; round++) {
    for (const [i, vm] of vms.entries()) docs.push(moveYaml(`${vm}-m${round}`, vm, kinds(round)[(round + i) % 6]));
  }
  await env.apply(docs.join('---\n'));

  const killedAt: number[] = [];
  const started = Date.now();
  const all = async () => (await env.api.get<{ items: MoveRequest[] }>(vmovePath('moverequests', { namespace: 'default' }))).items;
  const unfinished = async () => (await all()).filter((m) => !['Succeeded', 'Failed', 'Cancelled'].includes(m.status?.phase ?? ''));
  while ((await unfinished()).length > 0) {
    if (Date.now() - started > 780_000) throw new Error(`moves still unfinished after ${killedAt.length} kills:\n${(await unfinished()).map((m) => `${m.metadata.name}: ${m.status?.phase} ${m.status?.message ?? ''}`).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100 + rand() * 1_900));
    killedAt.push(Date.now());
    await env.fleet.kill(env.fleet.controller, 'SIGKILL');
    env.fleet.startController(CONTROLLER_ARGS);
  }
  const elapsed = (Date.now() - started) / 1000;

  const moves = await all();
  const byPhase = moves.reduce<Record<string, number>>((acc, m) => ({ ...acc, [m.status!.phase!]: (acc[m.status!.phase!] ?? 0) + 1 }), {});
  // A move was interrupted when the controller died between its start and its end.
  const interrupted = moves.filter((m) => {
    const from = Date.parse(m.status?.startTime ?? '');
    const to = Date.parse(m.status?.completionTime ?? '');
    return killedAt.some((t) => t > from && t < to);
  }).length;
  console.log(`crash test: ${moves.length} moves (${interrupted} interrupted by a kill), ${killedAt.length} controller kills, ${elapsed.toFixed(0)} s, phases ${JSON.stringify(byPhase)}`);
  // Where each VM runs, according to the hosts themselves.
  const inventory = await env.hostInventory();
  for (const name of vms) {
    const running = [...inventory.entries()].filter(([, list]) => list.some((v) => v.id === `default_${name}` && v.state === 'Running')).map(([n]) => n);
    const vm = await env.vm(name);
    expect({ name, running }).toEqual({ name, running: [vm?.status?.nodeName] });
    expect(vm?.status?.moveRef).toBeUndefined();
  }

  const failed = moves.filter((m) => m.status?.phase !== 'Succeeded').map((m) => `${m.metadata.name}: ${m.status?.phase} ${m.status?.message}`);
  if (failed.length && process.env.VMOVE_CRASH_DEBUG) {
    for (const f of moves.filter((m) => m.status?.phase !== 'Succeeded')) {
      const chain = moves.filter((m) => m.spec.vmName === f.spec.vmName).sort((a, b) => a.metadata.name!.localeCompare(b.metadata.name!, undefined, { numeric: true }));
      for (const m of chain) {
        const c = (m.status?.machine as { context?: { before?: unknown; after?: unknown; variant?: string } } | undefined)?.context;
        console.log(m.metadata.name, m.status?.phase, m.status?.moveType, c?.variant, JSON.stringify(c?.before), JSON.stringify(c?.after), m.status?.sourceNode, m.status?.targetNode);
      }
    }
  }
  expect(failed).toEqual([]);
  expect(moves).toHaveLength(VMS * MOVES_PER_VM);
  // The test means something only if the kills landed mid-move, for most moves — not how many
  // kills there were, which depends on how fast this machine finishes the moves.
  expect(interrupted).toBeGreaterThanOrEqual(moves.length / 2);
});
