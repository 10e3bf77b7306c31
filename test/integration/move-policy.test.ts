// MovePolicy and priority on the real API server with the sim driver: policies applied with
// kubectl change a live move's policy (its downtime rung), the move records what it used at intake
// and keeps it when the policy is edited mid-move, a MoveRequest's own field beats the policy, and
// under a limit of one move at a time free slots go Critical, Maintenance, User.
import type { MoveRequest } from '../../src/api/types';
import { contextOf, restoreMove, rungAt } from '../../src/machines';
import { moveRecordOf } from '../../src/machines/record';
import { moveYaml, startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(120_000);

let env: VmoveEnv;

beforeAll(async () => {
  env = await startVmoveEnv({
    // 100 MiB/s simulated 4× faster: a 2 GiB guest migrates in ~5 s, long enough to act mid-move.
    nodes: ['node-a', 'node-b'],
    nodeDefaults: { agentArgs: ['--sim-bandwidth-mibps', '100', '--sim-time-scale', '4'] },
    controllerArgs: ['--parallel-moves', '1'],
  });
  await env.apply(vmYaml('db', { node: 'node-a', memory: '2Gi' }).replace('  namespace: default\n', '  namespace: default\n  labels: { app: db }\n'));
  await env.waitFor('db running on node-a', async () => (await env.vm('db'))?.status?.phase === 'Running');
});

afterAll(async () => {
  await env?.stop();
});

const policyYaml = (name: string, spec: Record<string, unknown>): string =>
  JSON.stringify({ apiVersion: 'vmove.dev/v1alpha1', kind: 'MovePolicy', metadata: { name }, spec });

/** The policy the move's machine runs with (persisted in status.machine), and the rung it is on. */
function machineOf(mr: MoveRequest | undefined): { maxDowntimeMs: number; rung: string } {
  const record = moveRecordOf(mr?.status);
  if (!record) throw new Error('the move has no machine yet');
  const ctx = contextOf(restoreMove(record));
  return { maxDowntimeMs: ctx.policy.maxDowntimeMs, rung: rungAt(ctx.policy, ctx.rung).name };
}

test('a MovePolicy applied with kubectl sets a live move\'s downtime; editing it mid-move changes nothing in flight', async () => {
  // The catch-all names no label; the one for databases names one and wins.
  await env.apply(policyYaml('everything', { maxDowntimeMs: 900 }));
  await env.apply(policyYaml('databases', { selectors: { vmSelector: { matchLabels: { app: 'db' } } }, maxDowntimeMs: 400, progressTimeoutSeconds: 333 }));
  await env.apply(moveYaml('db-1', 'db', { target: { nodeName: 'node-b' } }));
  const migrating = await env.waitFor('db-1 migrating', async () => {
    const mr = await env.move('db-1');
    return mr?.status?.phase === 'Migrating' ? mr : undefined;
  });
  expect(migrating.status?.policyRef).toBe('databases');
  expect(migrating.status?.effectivePolicy).toEqual({
    mode: 'Auto',
    maxDowntimeMs: 400,
    progressTimeoutSeconds: 333,
    bandwidthMiBps: 0,
    completionTimeoutPerGiB: 150,
    allowAutoConverge: true,
    allowPostCopy: false,
    insecureMigration: false,
    maxAttempts: 3,
  });
  // The first rung of the ladder is a quarter of the policy's downtime (the built-in 300 would give 75 ms).
  expect(machineOf(migrating)).toEqual({ maxDowntimeMs: 400, rung: 'max downtime 100 ms' });

  await env.apply(policyYaml('databases', { selectors: { vmSelector: { matchLabels: { app: 'db' } } }, maxDowntimeMs: 800, progressTimeoutSeconds: 333 }));
  const done = await env.waitForMove('db-1', ['Succeeded', 'Failed', 'Cancelled']);
  expect(done.status?.phase).toBe('Succeeded');
  expect(done.status?.effectivePolicy?.maxDowntimeMs).toBe(400);
  expect(done.status?.policyRef).toBe('databases');
  expect(machineOf(done).maxDowntimeMs).toBe(400);

  // The edit was seen: the next move takes the new value.
  await env.apply(moveYaml('db-2', 'db', { target: { nodeName: 'node-a' } }));
  const next = await env.waitForMove('db-2', ['Succeeded', 'Failed', 'Cancelled']);
  expect(next.status).toMatchObject({ phase: 'Succeeded', policyRef: 'databases', effectivePolicy: { maxDowntimeMs: 800 } });
  expect(machineOf(next).maxDowntimeMs).toBe(800);
});

test('a MoveRequest\'s own spec.policy field beats the MovePolicy, field by field', async () => {
  await env.apply(moveYaml('db-3', 'db', { target: { nodeName: 'node-b' }, policy: { maxDowntimeMs: 200 } }));
  const mr = await env.waitForMove('db-3', ['Succeeded', 'Failed', 'Cancelled']);
  expect(mr.status).toMatchObject({ phase: 'Succeeded', policyRef: 'databases', effectivePolicy: { maxDowntimeMs: 200, progressTimeoutSeconds: 333 } });
  expect(machineOf(mr)).toEqual({ maxDowntimeMs: 200, rung: 'max downtime 50 ms' });
});

test('under a limit of one move at a time, the free slot goes Critical, then Maintenance, then User', async () => {
  await env.kubectl(['delete', 'movepolicy', 'everything', 'databases']);
  const small = ['u', 'm', 'c'];
  await env.apply(small.map((n) => vmYaml(`small-${n}`, { node: 'node-a' })).join('---\n'));
  await env.waitFor('the small VMs running', async () => (await Promise.all(small.map((n) => env.vm(`small-${n}`)))).every((vm) => vm?.status?.phase === 'Running'));
  // db takes the only slot for ~5 s; the three wait behind it, the User one made first.
  await env.apply(moveYaml('db-4', 'db', { target: { nodeName: 'node-a' } }));
  await env.waitFor('db-4 to hold the slot', async () => (await env.move('db-4'))?.status?.phase === 'Migrating');
  await env.apply(moveYaml('small-u-move', 'small-u', { target: { nodeName: 'node-b' } }));
  await env.apply(moveYaml('small-m-move', 'small-m', { target: { nodeName: 'node-b' }, priority: 'Maintenance' }));
  await env.apply(moveYaml('small-c-move', 'small-c', { target: { nodeName: 'node-b' }, priority: 'Critical' }));
  await env.waitFor('all three waiting for the slot', async () => {
    const all = await Promise.all(small.map((n) => env.move(`small-${n}-move`)));
    return all.every((mr) => mr?.status?.conditions?.find((c) => c.type === 'Progressing')?.reason === 'WaitingForLimits');
  });
  expect((await env.move('db-4'))?.status?.phase).toBe('Migrating');
  const ended = await Promise.all(small.map((n) => env.waitForMove(`small-${n}-move`, ['Succeeded', 'Failed', 'Cancelled'])));
  expect(ended.map((mr) => mr.status?.phase)).toEqual(['Succeeded', 'Succeeded', 'Succeeded']);
  const byStart = [...ended].sort((a, b) => Date.parse(a.status!.startTime!) - Date.parse(b.status!.startTime!)).map((mr) => mr.metadata.name);
  expect(byStart).toEqual(['small-c-move', 'small-m-move', 'small-u-move']);
  const table = await env.kubectl(['get', 'mvr', 'small-c-move', 'small-u-move']);
  expect(table.stdout).toMatch(/PRIORITY/);
  expect(table.stdout).toMatch(/small-c-move .*Critical/);
});
