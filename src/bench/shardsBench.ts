// Two controller shards over one API server (docs/scale.md): the hosts split in two by the
// vmove.dev/shard label, each shard's controller (`--shard`) at the same limit, the same moves
// run once by the two shards at once and once by one unsharded controller. Prints each shard's
// throughput, their sum against the single controller's, and checks from the controllers' own
// logs that no move was handled by both shards and that every move stayed inside its VM's shard.
import { readFileSync } from 'node:fs';
import { SHARD_LABEL } from '../controller/clusterView';
import { corePath } from '../kube/paths';
import { createMove, createVms, startBenchCluster, startBenchController, waitEnded, type BenchCluster } from './benchCluster';
import { fmtMs, table } from './stats';

export interface ShardsBenchOptions {
  hostsPerShard: number;
  vmsPerHost: number;
  /** In flight at once, per controller. */
  parallelMoves: number;
  /** The sim link: slow enough that the limit, not this machine's CPU, bounds each controller. */
  linkMiBps: number;
}

export const DEFAULT_SHARDS_BENCH: ShardsBenchOptions = { hostsPerShard: 20, vmsPerHost: 5, parallelMoves: 5, linkMiBps: 128 };

const SHARDS = ['a', 'b'] as const;
const PER_NODE = 2;

/** Moves (namespace/name) whose phase changes a controller's log records. */
export function movesInLog(logText: string): Set<string> {
  const seen = new Set<string>();
  for (const line of logText.split('\n')) {
    if (!line.includes('"msg":"phase"')) continue;
    try {
      const move = (JSON.parse(line) as { move?: string }).move;
      if (move) seen.add(move);
    } catch {
      // a line cut short at the end of the file
    }
  }
  return seen;
}

export async function benchShards(o: ShardsBenchOptions = DEFAULT_SHARDS_BENCH, log: (s: string) => void = console.log): Promise<void> {
  const hosts = 2 * o.hostsPerShard;
  log(`shards: ${hosts} sim hosts in shards ${SHARDS.join(', ')} (label ${SHARD_LABEL}), ${o.vmsPerHost} VMs a host, limit ${o.parallelMoves} per controller, sim link ${o.linkMiBps} MiB/s (256 MiB guests: ~${(256 / o.linkMiBps).toFixed(1)} s on the wire each)`);
  const bc = await startBenchCluster({ nodes: hosts, simOptions: { bandwidthMiBps: o.linkMiBps } });
  try {
    const node = (i: number) => `node-${String(i).padStart(3, '0')}`;
    const shardOf = (i: number) => SHARDS[i < o.hostsPerShard ? 0 : 1]!;
    for (let i = 0; i < hosts; i++) await bc.api.mergePatch(corePath('nodes', { name: node(i) }), { metadata: { labels: { [SHARD_LABEL]: shardOf(i) } } });
    const vms = Array.from({ length: hosts * o.vmsPerHost }, (_, j) => {
      const i = j % hosts;
      return { name: `vm-${j}`, node: node(i), shard: shardOf(i), labels: { [SHARD_LABEL]: shardOf(i) } };
    });
    const limits = ['--parallel-moves', String(o.parallelMoves), '--outbound-per-node', String(PER_NODE), '--inbound-per-node', String(PER_NODE), '--workers', '16'];
    // Each shard's controller places its own VMs, then moves them.
    const shardProcs = SHARDS.map((s) => bc.fleet.startShardController(s, ['--identity', `bench-${s}`, ...limits]));
    await createVms(bc.api, vms);

    // Two shards at once.
    const sharded = await runMoves(bc, 's', vms);
    await Promise.all(shardProcs.map((p) => bc.fleet.kill(p, 'SIGTERM')));
    const handled = shardProcs.map((p) => movesInLog(readFileSync(p.logFile, 'utf8')));

    // One controller for the whole cluster, the same moves again.
    await startBenchController(bc, { parallelMoves: o.parallelMoves, outboundPerNode: PER_NODE, inboundPerNode: PER_NODE });
    const single = await runMoves(bc, 'u', vms);

    const byShard = SHARDS.map((s, k) => {
      const mine = vms.filter((v) => v.shard === s).map((v) => `default/s-${v.name}`);
      const ends = mine.map((m) => sharded.ended.get(m)!);
      const ms = Math.max(...ends) - sharded.t0;
      const others = [...handled[k]!].filter((m) => !mine.includes(m));
      const strayTargets = mine.filter((m) => {
        const t = bc.moves.get(m)?.targetNode;
        return !t || shardOf(Number(t.slice('node-'.length))) !== s;
      });
      return { s, moves: mine.length, ms, perSec: mine.length / (ms / 1000), handled: handled[k]!.size, others: others.length, strayTargets: strayTargets.length };
    });
    const both = [...handled[0]!].filter((m) => handled[1]!.has(m)).length;
    const sum = byShard.reduce((a, r) => a + r.perSec, 0);
    const combined = vms.length / (sharded.ms / 1000);
    const singlePerSec = vms.length / (single.ms / 1000);
    log('');
    log(
      table([
        ['run', 'moves', 'makespan', 'moves/s', 'moves it handled (its log)', "another shard's moves it handled", 'targets outside its shard'],
        ...byShard.map((r) => [`shard ${r.s}`, r.moves, fmtMs(r.ms), r.perSec.toFixed(2), r.handled, r.others, r.strayTargets]),
        ['both shards at once', vms.length, fmtMs(sharded.ms), combined.toFixed(2), '', '', ''],
        ['one controller, unsharded', vms.length, fmtMs(single.ms), singlePerSec.toFixed(2), '', '', ''],
      ]),
    );
    log(`  shard a + shard b: ${sum.toFixed(2)} moves/s = ${(sum / singlePerSec).toFixed(2)}× one controller at the same limit (two controllers each with their own limit: 2× is ideal); together ${(combined / singlePerSec).toFixed(2)}×`);
    log(`  moves handled by both shards: ${both} (goal 0); every move Succeeded: yes (a failed one stops the benchmark)`);
  } finally {
    await bc.stop();
  }
}

/** One live move per VM, all created at once; when each ended. */
async function runMoves(bc: BenchCluster, prefix: string, vms: { name: string }[]): Promise<{ t0: number; ms: number; ended: Map<string, number> }> {
  const t0 = Date.now();
  for (let i = 0; i < vms.length; i += 50) await Promise.all(vms.slice(i, i + 50).map((v) => createMove(bc.api, `${prefix}-${v.name}`, v.name, { mode: 'Live' })));
  const ended = new Map<string, number>();
  await Promise.all(vms.map(async (v) => ended.set(`default/${prefix}-${v.name}`, await waitEnded(bc, `${prefix}-${v.name}`, 3_600_000))));
  return { t0, ms: Math.max(...ended.values()) - t0, ended };
}
