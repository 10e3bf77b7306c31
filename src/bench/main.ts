// `npm run bench -- [NAME …] [--quick] [--cpu-prof]` (what `make bench` runs): each benchmark prints its own
// figures and ratios. Without names, all of them run.
import './quietLogs';
import { parseArgs } from 'node:util';
import { benchDataplane } from './dataplane';
import { benchEvacuation, DEFAULT_EVACUATION_BENCH } from './evacuationBench';
import { benchMoves, DEFAULT_MOVES_BENCH } from './movesBench';
import { benchRollback } from './rollbackBench';
import { benchScale, DEFAULT_SCALE_BENCH } from './scaleBench';
import { benchShards, DEFAULT_SHARDS_BENCH } from './shardsBench';

interface RunOptions {
  quick: boolean;
  hosts?: number;
  /** --cpu-prof: CPU profiles of the processes (the moves benchmark). */
  cpuProf: boolean;
}

const benchmarks: Record<string, { about: string; run: (o: RunOptions) => Promise<void> }> = {
  moves: {
    about: 'move engine: one-move latency, writes per move, API write latency, 1,000 moves over 100 sim hosts (--cpu-prof: where the CPU goes)',
    run: ({ quick, cpuProf }) => benchMoves({ ...(quick ? { nodes: 20, vmsPerNode: 5, latencySamples: 10, parallelMoves: [5] } : DEFAULT_MOVES_BENCH), cpuProf }),
  },
  evacuation: {
    about: 'evacuation makespan for 200 VMs over 20 sim hosts against the lower bound of bytes ÷ usable bandwidth under the limits',
    run: ({ quick }) => benchEvacuation(quick ? { ...DEFAULT_EVACUATION_BENCH, hosts: 6, vms: 24 } : DEFAULT_EVACUATION_BENCH),
  },
  scale: {
    about: 'controller at 10,000 VMs on 1,000 sim hosts: RSS, reconcile p99 over 1,000 moves, one move at size against idle',
    // --hosts N: another size, 10 VMs a host and N moves (the full size may not fit a small machine).
    run: ({ quick, hosts }) =>
      benchScale(hosts ? { ...DEFAULT_SCALE_BENCH, hosts, vms: hosts * 10, moves: hosts } : quick ? { hosts: 100, vms: 1000, moves: 100, parallelMoves: 50, probes: 5 } : DEFAULT_SCALE_BENCH),
  },
  shards: {
    about: 'two controller shards over one API server (40 sim hosts, 200 moves): each shard\'s throughput, their sum against one controller, no move handled twice',
    run: ({ quick }) => benchShards(quick ? { ...DEFAULT_SHARDS_BENCH, hostsPerShard: 5, vmsPerHost: 4 } : DEFAULT_SHARDS_BENCH),
  },
  rollback: {
    about: 'RollingBack after the target ran, on real guests (qemu, TCG): each step of the rollback planned now and of the one before, and until the guest heartbeats again',
    run: ({ quick }) => benchRollback({ quick }),
  },
  dataplane: {
    about: 'live migration of real guests (TCG): vmove (qemu driver, ladder) vs virsh migrate --live with libvirt defaults, unlimited and capped links',
    run: ({ quick }) => benchDataplane({ quick }),
  },
};

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { quick: { type: 'boolean', default: false }, hosts: { type: 'string' }, 'cpu-prof': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    for (const [name, b] of Object.entries(benchmarks)) console.log(`${name.padEnd(12)} ${b.about}`);
    return 0;
  }
  const hosts = values.hosts === undefined ? undefined : Number(values.hosts);
  if (hosts !== undefined && !(Number.isInteger(hosts) && hosts >= 2)) {
    console.error(`--hosts: a whole number of sim hosts, at least 2 (got "${values.hosts}")`);
    return 2;
  }
  const names = positionals.length ? positionals : Object.keys(benchmarks);
  for (const name of names) {
    const b = benchmarks[name];
    if (!b) {
      console.error(`unknown benchmark "${name}" (${Object.keys(benchmarks).join(', ')})`);
      return 2;
    }
    console.log(`\n=== ${name} ===`);
    await b.run({ quick: values.quick ?? false, cpuProf: values['cpu-prof'] ?? false, ...(hosts !== undefined ? { hosts } : {}) });
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
