// The move engine's own cost, with the sim driver moving bytes instantly: how long one move
// takes from `create` to `Succeeded`, how many writes it costs the API server (and what one
// write costs there, in the same run), and how many moves per second 100 hosts sustain with the
// concurrency limits respected.
import type { MoveRequest } from '../api/types';
import { traitsOf } from '../machines/traits';
import { bytesAcross, isTerminal } from '../machines/vocabulary';
import { createMove, createVms, measureApiWrites, procCpuMs, startBenchCluster, startBenchController, stopBenchController, waitEnded, type BenchCluster } from './benchCluster';
import { profileRound, selfTimes, type RoundProfiles } from './cpuProfiles';
import { fmtBytes, fmtMs, mean, percentile, table } from './stats';
import { KubeConfig } from '@kubernetes/client-node';
import { VirtualMachineWatch } from '../agent/vmWatch';
import type { RunningAgent } from '../agent/agent';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

interface CpuSample {
  controller: number;
  agents: number;
  apiserver: number;
  etcd: number;
}

function cpuNow(bc: BenchCluster): CpuSample {
  const u = process.cpuUsage();
  return {
    controller: procCpuMs(bc.fleet.controller?.child.pid),
    agents: (u.user + u.system) / 1000,
    apiserver: procCpuMs(bc.cp.pids.kubeApiserver),
    etcd: procCpuMs(bc.cp.pids.etcd),
  };
}

export interface MovesBenchOptions {
  nodes: number;
  vmsPerNode: number;
  latencySamples: number;
  /** Cluster-wide move limits to run the throughput round with (the first is the default, 5). */
  parallelMoves: number[];
  /** Profile each throughput round: controller, benchmark process (agents) and kube-apiserver. */
  cpuProf?: boolean;
}

/** Issue #16, item 1: throughput at a limit of 50 with 100 sim hosts. */
const GOAL_MOVES_PER_S = { limit: 50, movesPerSecond: 25 };
/** Seconds of kube-apiserver profile taken from the start of each profiled round. */
const APISERVER_PROFILE_S = 15;

export const DEFAULT_MOVES_BENCH: MovesBenchOptions = { nodes: 100, vmsPerNode: 10, latencySamples: 40, parallelMoves: [5, 50] };

const OUTBOUND = 2;
const INBOUND = 2;

export async function benchMoves(o: MovesBenchOptions = DEFAULT_MOVES_BENCH, log: (s: string) => void = console.log): Promise<void> {
  log(`moves: ${o.nodes} sim hosts (instant transfers), real kube-apiserver + etcd, controller in its own process`);
  const bc = await startBenchCluster({ nodes: o.nodes });
  // "Before": what an agent started with --watch-all-vms receives (every VM in the cluster) — the
  // same view class, watching alongside the agents, which watch only their node's VMs ("after").
  const allKc = new KubeConfig();
  allKc.loadFromFile(bc.cp.kubeconfigs.agent);
  const before = { events: 0, bytes: 0 };
  const allVms = await VirtualMachineWatch.acquire(allKc, { node: 'bench-comparison', watchAll: true }, {
    onChange: () => undefined,
    onReceived: (r) => {
      before.events += r.events;
      before.bytes += r.bytes;
    },
  });
  try {
    await startBenchController(bc, { parallelMoves: o.parallelMoves[0]!, outboundPerNode: OUTBOUND, inboundPerNode: INBOUND });

    // One move at a time: latency and writes.
    await createVms(bc.api, [{ name: 'lat', node: 'node-000' }]);
    const latencies: number[] = [];
    const writes: number[] = [];
    for (let i = 0; i < o.latencySamples; i++) {
      const name = `lat-${i}`;
      const t0 = Date.now();
      await createMove(bc.api, name, 'lat', { mode: 'Live', target: { nodeName: i % 2 === 0 ? 'node-001' : 'node-000' } });
      const end = await waitEnded(bc, name);
      latencies.push(end - t0);
      await sleep(300); // let the last writes (finalizer removal) arrive before counting them
      writes.push(bc.moves.get(`default/${name}`)!.writes);
    }
    const apiWrites = await measureApiWrites(bc.api);
    const sample = await bc.api.get<MoveRequest>(`/apis/vmove.dev/v1alpha1/namespaces/default/moverequests/lat-${o.latencySamples - 1}`);
    const phaseTimes = (sample.status?.history ?? []).map((h) => `${h.phase} ${h.endedAt ? fmtMs(Date.parse(h.endedAt) - Date.parse(h.startedAt)) : ''}`.trim());
    log('');
    log(
      table([
        ['one live move at a time', 'p50', 'p99', 'mean'],
        ['create → Succeeded', fmtMs(percentile(latencies, 50)), fmtMs(percentile(latencies, 99)), fmtMs(mean(latencies))],
        ['writes per move (status + finalizer)', percentile(writes, 50), percentile(writes, 99), mean(writes).toFixed(1)],
        ['API server write latency (ConfigMap patch)', fmtMs(percentile(apiWrites, 50)), fmtMs(percentile(apiWrites, 99)), fmtMs(mean(apiWrites))],
      ]),
    );
    log(`  where one move's time goes: ${phaseTimes.join(' · ')}`);
    log(`  → writes alone account for ≈ ${fmtMs(percentile(writes, 50) * percentile(apiWrites, 50))} of the ${fmtMs(percentile(latencies, 50))} median`);

    // Many moves at once: throughput with the limits respected.
    const vms = Array.from({ length: o.nodes * o.vmsPerNode }, (_, i) => ({ name: `vm-${i}`, node: `node-${String(i % o.nodes).padStart(3, '0')}` }));
    log(`\ncreating ${vms.length} VMs …`);
    const tv = Date.now();
    await createVms(bc.api, vms);
    log(`  ${vms.length} VMs running after ${fmtMs(Date.now() - tv)}`);

    const cpuRows: (string | number)[][] = [['CPU ms per move, limit', 'controller', 'agents (bench process)', 'kube-apiserver', 'etcd', 'total', 'cores busy']];
    const rows: (string | number)[][] = [['parallel moves limit', 'moves', 'makespan', 'moves/s', 'max in flight', 'max out/node', 'max in/node', 'succeeded']];
    const profDir = o.cpuProf ? mkdtempSync(path.join(tmpdir(), 'vmove-cpu-prof-')) : undefined;
    const profiles: string[] = [];
    for (const [round, limit] of o.parallelMoves.entries()) {
      const profiling = profDir ? await profileRound(profDir, `limit-${limit}`, bc.api, APISERVER_PROFILE_S) : undefined;
      // A profiled round starts its own controller, so its profile holds that round only.
      if (round > 0 || profiling) await startBenchController(bc, { parallelMoves: limit, outboundPerNode: OUTBOUND, inboundPerNode: INBOUND, ...(profiling ? { cpuProfileDir: profiling.controllerDir } : {}) });
      const inFlight = new Map<string, { source?: string; target?: string }>();
      const max = { all: 0, out: 0, in: 0 };
      bc.onMove((mr: MoveRequest) => {
        if (!mr.metadata.name?.startsWith(`r${round}-`)) return;
        const phase = mr.status?.phase;
        const key = mr.metadata.name;
        // What the limits count: moves holding a transfer stream (past Pending, bytes not yet across).
        if (phase && phase !== 'Pending' && !isTerminal(phase) && !bytesAcross(phase) && traitsOf(mr.status?.moveType).transfers) inFlight.set(key, { source: mr.status?.sourceNode, target: mr.status?.targetNode });
        else inFlight.delete(key);
        const per = (k: 'source' | 'target') => Math.max(0, ...Object.values([...inFlight.values()].reduce<Record<string, number>>((acc, m) => (m[k] ? { ...acc, [m[k]!]: (acc[m[k]!] ?? 0) + 1 } : acc), {})));
        max.all = Math.max(max.all, inFlight.size);
        max.out = Math.max(max.out, per('source'));
        max.in = Math.max(max.in, per('target'));
      });
      const names = vms.map((v) => `r${round}-${v.name}`);
      const cpu0 = cpuNow(bc);
      const t0 = Date.now();
      for (let i = 0; i < vms.length; i += 50) await Promise.all(vms.slice(i, i + 50).map((v) => createMove(bc.api, `r${round}-${v.name}`, v.name)));
      const ends = await Promise.all(names.map((n) => waitEnded(bc, n, 3_600_000)));
      const makespan = Math.max(...ends) - t0;
      const cpu1 = cpuNow(bc);
      const per = (k: keyof CpuSample) => (cpu1[k] - cpu0[k]) / names.length;
      cpuRows.push([limit, per('controller').toFixed(1), per('agents').toFixed(1), per('apiserver').toFixed(1), per('etcd').toFixed(1), (per('controller') + per('agents') + per('apiserver') + per('etcd')).toFixed(1), ((cpu1.controller + cpu1.agents + cpu1.apiserver + cpu1.etcd - cpu0.controller - cpu0.agents - cpu0.apiserver - cpu0.etcd) / makespan).toFixed(2)]);
      const ok = names.filter((n) => bc.moves.get(`default/${n}`)?.phase === 'Succeeded').length;
      rows.push([limit, names.length, fmtMs(makespan), (names.length / (makespan / 1000)).toFixed(1), max.all, max.out, max.in, ok]);
      log(`  round ${round + 1}: limit ${limit}: ${names.length} moves in ${fmtMs(makespan)}; at most ${max.all} in flight, ${max.out} out of and ${max.in} into one node; ${ok} succeeded`);
      if (profiling) profiles.push(profileReport(limit, names.length, await profiling.finish(() => stopBenchController(bc))));
    }
    log('');
    log(table(rows));
    const single = percentile(latencies, 50) / 1000;
    for (const r of rows.slice(1)) {
      const limit = Number(r[0]);
      const ideal = Math.min(limit, o.nodes) / single;
      log(`  limit ${limit}: ${Number(r[3]).toFixed(1)} moves/s = ${(Number(r[3]) / ideal).toFixed(2)} × the ideal ${ideal.toFixed(1)} (limit ÷ one move's median latency); limits ${Number(r[4]) <= limit && Number(r[5]) <= OUTBOUND && Number(r[6]) <= INBOUND ? 'respected' : 'EXCEEDED'}`);
    }
    const goalRow = rows.slice(1).find((r) => Number(r[0]) === GOAL_MOVES_PER_S.limit);
    if (goalRow && o.nodes >= 100) {
      const figure = Number(goalRow[3]);
      log(`  goal (issue #16, item 1): ≥ ${GOAL_MOVES_PER_S.movesPerSecond} moves/s at a limit of ${GOAL_MOVES_PER_S.limit} with ${o.nodes} sim hosts: ${figure.toFixed(1)} moves/s — ${figure >= GOAL_MOVES_PER_S.movesPerSecond ? 'met' : 'missed'}`);
    }
    log('');
    log(table(cpuRows));
    log('  process CPU time (user + system, /proc/<pid>/stat and process.cpuUsage) over each round ÷ its moves; "agents" is the benchmark process: 100 in-process agents, its MoveRequest watch and the --watch-all-vms comparison view');
    if (profDir) log(`\nCPU profiles (--cpu-prof) in ${profDir}: .cpuprofile opens in Chrome DevTools, .pprof with \`go tool pprof\`\n${profiles.join('\n')}`);
    await watchReport(bc.agents, before, vms.length, o, log);
  } finally {
    await allVms.release();
    await bc.stop();
  }
}

/** One profiled round: self time by package and the busiest functions, per process. */
function profileReport(limit: number, moves: number, r: RoundProfiles): string {
  const lines = [`limit ${limit}:`];
  for (const [who, p] of [['controller', r.controller], ['benchmark process (agents)', r.here]] as const) {
    if (!p) {
      lines.push(`  ${who}: no profile written`);
      continue;
    }
    const t = selfTimes(p);
    lines.push(`  ${who}: ${fmtMs(t.total)} of CPU sampled (${(t.total / moves).toFixed(1)} ms per move); by package: ${t.packages.slice(0, 6).map((x) => `${x.name} ${(x.share * 100).toFixed(0)}%`).join(', ')}`);
    lines.push(table([['self time', 'ms', 'share'], ...t.functions.slice(0, 10).map((f) => [f.name, f.ms.toFixed(0), `${(f.share * 100).toFixed(1)}%`])]).replace(/^/gm, '    '));
  }
  lines.push(`  kube-apiserver, the round's first ${APISERVER_PROFILE_S} s (go tool pprof -top):`);
  lines.push(...r.apiserverTop.map((l) => `    ${l}`));
  return lines.join('\n');
}

/** Events and bytes each agent's VM view received over the whole run, against one --watch-all-vms view. */
async function watchReport(agents: RunningAgent[], before: { events: number; bytes: number }, vms: number, o: MovesBenchOptions, log: (s: string) => void): Promise<void> {
  const sum = async (c: { get(): Promise<{ values: { value: number }[] }> }) => (await c.get()).values.reduce((s, v) => s + v.value, 0);
  const events = await Promise.all(agents.map((a) => sum(a.metrics.watchEvents)));
  const bytes = await Promise.all(agents.map((a) => sum(a.metrics.watchBytes)));
  const gets = await Promise.all(agents.map(async (a) => (await a.metrics.watchBytes.get()).values.filter((v) => v.labels.via === 'get').reduce((s, v) => s + v.value, 0)));
  log(`\nVirtualMachine watch per agent over this run (${o.nodes} hosts, ${vms + 1} VMs, every move above; lists, watch streams and GETs by name):`);
  log(
    table([
      ['received per agent', 'before (--watch-all-vms)', 'after: mean', 'after: max', 'before ÷ after (mean)'],
      ['watch events', before.events, mean(events).toFixed(0), Math.max(...events), (before.events / mean(events)).toFixed(1)],
      ['bytes', fmtBytes(before.bytes), fmtBytes(mean(bytes)), fmtBytes(Math.max(...bytes)), (before.bytes / mean(bytes)).toFixed(1)],
    ]),
  );
  log(`  after: of each agent's bytes, ${fmtBytes(mean(gets))} (mean) are GETs by name of VMs outside its view (targets of moves in flight)`);
  log(`  before: one --watch-all-vms view watching beside the agents; agents in one process with that flag share it, each separate agent process receives all of it`);
}
