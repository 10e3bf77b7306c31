// The agent API under bad input: a real `vmove agent` process (sim driver, HTTPS with a node
// certificate of the vmove CA, audience-bound TokenReview against a real kube-apiserver) gets ≥ 10,000 generated and mutated requests (test/support/agentFuzzCases.ts)
// as the controller, plus bodies over 1 MiB and bodies that never finish. Asserted: the process
// stays up, no answer is a 5xx, every case the protocol refuses is refused (with the field named
// when a field was broken), no operation is recorded for a refused request, and afterwards the
// agent still moves a VM to another agent. Needs `npm run build` (the CLI runs from dist/).
// VMOVE_FUZZ_CASES and VMOVE_FUZZ_SEED change the count and replay a run.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../src/agent/client';
import { CA_CERT, issueNodeCert } from '../../src/cluster/agentPki';
import { createSimImage } from '../../src/drivers/sim';
import type { OperationRequest, OperationStatus } from '../../src/protocol/operations';
import type { VmSpec } from '../../src/protocol/vm';
import { agentChannel, type AgentChannel, type RawResponse } from '../support/agentChannel';
import { fuzzCases, oversizedAndSlowCases, type FuzzCase } from '../support/agentFuzzCases';
import { CLI, launchAgent, stopAgent, type AgentProcess } from '../support/agentProcess';
import { requestToken } from '../support/agentTokens';
import { CLUSTER_START_TIMEOUT_MS, startTestCluster, type TestCluster } from '../support/testCluster';

jest.setTimeout(300_000);

const CASES = Number(process.env.VMOVE_FUZZ_CASES ?? 10_000);
const SEED = Number(process.env.VMOVE_FUZZ_SEED ?? Date.now() % 2 ** 31);
const CONCURRENCY = 8;
const MiB = 2 ** 20;

let cluster: TestCluster;
let work: string;
let source: AgentProcess;
let target: AgentProcess;
let channel: AgentChannel;

/** The identity the agents must serve: the controller's audience-bound token (TokenRequest). */
let token: string;
let ca: string;
const controllerToken = (): string => token;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  cluster = await startTestCluster();
  work = await mkdtemp(join(tmpdir(), 'vmove-agent-fuzz-'));
  await createSimImage(join(work, 'images'), 'testguest');
  const base = 29000 + (process.pid % 500) * 10;
  token = await requestToken(cluster, 'vmove-controller');
  const tlsDir = (node: string) => issueNodeCert(cluster.agentPkiDir, node, ['127.0.0.1'], join(work, node, 'tls'));
  source = await launchAgent({ node: 'fuzz-a', work, agentKubeconfig: cluster.agentKubeconfig, migrationPorts: [base, base + 4], tlsDir: await tlsDir('fuzz-a') });
  target = await launchAgent({ node: 'fuzz-b', work, agentKubeconfig: cluster.agentKubeconfig, migrationPorts: [base + 5, base + 9], tlsDir: await tlsDir('fuzz-b') });
  ca = await readFile(join(cluster.agentPkiDir, CA_CERT), 'utf8');
  channel = agentChannel(source.endpoint, { token: controllerToken(), ca, maxSockets: CONCURRENCY });
}, CLUSTER_START_TIMEOUT_MS);

afterAll(async () => {
  channel?.close();
  await Promise.all([source, target].filter(Boolean).map((a) => stopAgent(a.proc)));
  await cluster?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Runs `cases` with at most `limit` in flight; answers in the order of the cases. */
async function runAll(cases: FuzzCase[], limit: number): Promise<RawResponse[]> {
  const out: RawResponse[] = new Array(cases.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < cases.length; i = next++) out[i] = await channel.request(cases[i]!.request);
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return out;
}

/** What is wrong with one answer, if anything. */
function judge(c: FuzzCase, res: RawResponse): string | undefined {
  if (!res.answered) return `no answer: ${res.error}`;
  if (res.status >= 500) return `answered ${res.status}: ${res.text.slice(0, 300)}`;
  if (c.expect.kind === 'any') return undefined;
  if (!c.expect.statuses.includes(res.status)) return `answered ${res.status}, expected ${c.expect.statuses.join('|')}: ${res.text.slice(0, 300)}`;
  const { field } = c.expect;
  const body = res.json as { error?: { message?: unknown }; problems?: { field: string }[] } | undefined;
  if (typeof body?.error?.message !== 'string') return `no JSON error message: ${res.text.slice(0, 200)}`;
  if (field && !(body.problems ?? []).some((p) => p.field === field)) return `refused without naming ${field}: ${res.text.slice(0, 300)}`;
  return undefined;
}

/** Whether a record of `opId` exists where the executor would write it (or a traversal would land). */
function recorded(stateDir: string, opId: string): boolean {
  if (opId.includes('\u0000')) return false;
  return existsSync(join(stateDir, 'operations', `${opId}.json`));
}

const controller = () => new AgentClient({ token: controllerToken, ca: () => ca, timeoutMs: 10_000 });

async function run(endpoint: string, opId: string, req: OperationRequest): Promise<OperationStatus> {
  const c = controller();
  let st = await c.putOperation(endpoint, opId, req, { waitMs: 10_000 });
  while (st.state === 'Running') st = (await c.getOperation(endpoint, opId, { waitMs: 10_000 }))!;
  return st;
}

test(`≥ ${CASES} generated and mutated requests: no crash, no 5xx, nothing recorded for what was refused; then a VM still moves`, async () => {
  const generated = fuzzCases(CASES, SEED);
  const edge = oversizedAndSlowCases();
  // The slow ones wait out the agent's body deadline alongside the rest, on their own sockets.
  const edgeChannel = agentChannel(source.endpoint, { token: controllerToken(), ca, maxSockets: edge.length });
  const started = Date.now();
  const [edgeAnswers, answers] = await Promise.all([
    Promise.all(edge.map((c) => edgeChannel.request(c.request))).finally(() => edgeChannel.close()),
    runAll(generated, CONCURRENCY),
  ]);
  const seconds = (Date.now() - started) / 1000;
  const all = [...generated, ...edge];
  const results = [...answers, ...edgeAnswers];

  const failures: string[] = [];
  const accepted = new Set<string>();
  const byCategory = new Map<string, Map<number, number>>();
  all.forEach((c, i) => {
    const res = results[i]!;
    const counts = byCategory.get(c.category) ?? new Map<number, number>();
    counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
    byCategory.set(c.category, counts);
    const wrong = judge(c, res);
    if (wrong) failures.push(`[${c.category}] ${c.note} (${c.request.method} ${c.request.path.slice(0, 80)}): ${wrong}`);
    if (c.opId !== undefined) {
      if (res.status === 200 && c.request.method === 'PUT') accepted.add(c.opId);
      else if (!accepted.has(c.opId) && recorded(source.stateDir, c.opId)) failures.push(`[${c.category}] ${c.note}: answered ${res.status} but ${c.opId} was recorded`);
    }
  });

  const summary = [...byCategory.entries()].sort().map(([cat, counts]) => `${cat} ${[...counts.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ')}`);
  console.log(`agent API fuzz: ${all.length} cases (${generated.length} generated, seed ${SEED}; ${edge.length} oversized/slow) in ${seconds.toFixed(1)} s, ${accepted.size} accepted\n  ${summary.join('\n  ')}`);

  expect(failures.slice(0, 20)).toEqual([]);
  // 10,000 unless VMOVE_FUZZ_CASES asks for another count.
  expect(generated.length).toBe(CASES);
  expect(source.proc.exitCode).toBeNull();
  expect((await channel.request({ method: 'GET', path: '/healthz', token: null })).status).toBe(200);

  // Only accepted operations are recorded (a traversal opId would have landed beside the folder: checked above).
  const records = (await readdir(join(source.stateDir, 'operations'))).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length));
  expect(records.filter((r) => !accepted.has(r))).toEqual([]);

  // The agent still does its job: a VM moves live from it to the other agent.
  const vm: VmSpec = { id: 'default_after-fuzz', uid: 'after-fuzz-uid', image: 'testguest', cpu: 1, memoryBytes: 256 * MiB, disks: [{ name: 'root', sizeBytes: 1024 * MiB, storage: 'SharedFile' }] };
  const tuning = { bandwidthMiBps: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false };
  expect(await run(source.endpoint, 'after.create', { kind: 'ensureVm', vm, disks: 'fresh', start: true })).toMatchObject({ state: 'Succeeded' });
  const prepared = await run(target.endpoint, 'after.prepare', { kind: 'prepareIncoming', vm, blockMigration: false, tuning });
  expect(prepared).toMatchObject({ state: 'Succeeded', endpoint: { migrationUri: expect.stringMatching(/^tcp:/) } });
  const migrated = await run(source.endpoint, 'after.migrate', { kind: 'migrate', vm, to: prepared.endpoint!, tuning, blockMigration: false });
  expect(migrated).toMatchObject({ state: 'Succeeded', migration: { state: 'completed' } });
  expect(await run(target.endpoint, 'after.complete', { kind: 'completeIncoming', vm })).toMatchObject({ state: 'Succeeded' });
  expect(await run(target.endpoint, 'after.verify', { kind: 'verify', vm, windowMs: 5_000, expectRunning: true, heartbeatAbove: migrated.guestHeartbeat ?? 0 })).toMatchObject({ state: 'Succeeded' });
  const onTarget = await controller().listVms(target.endpoint);
  expect(onTarget.find((v) => v.id === vm.id)).toMatchObject({ state: 'Running' });
  expect(source.proc.exitCode).toBeNull();
});
