// The controller at scale: 10,000 VMs on 1,000 sim hosts (agents in this process), then 1,000
// moves. What a platform team asks before trusting one controller with a fleet: its memory
// (RSS, sampled all along), how long one reconcile takes (its own histogram, read from /metrics
// over the moves), and whether one move is still as quick as on an idle cluster.
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../cluster/ports';
import { createMove, createVms, procRssBytes, startBenchCluster, startBenchController, waitEnded, type BenchCluster } from './benchCluster';
import { histogramBuckets, quantileBetween } from './histogram';
import { fmtBytes, fmtMs, percentile, table } from './stats';

export interface ScaleBenchOptions {
  hosts: number;
  vms: number;
  moves: number;
  parallelMoves: number;
  /** Single moves timed on the idle cluster and again at full size. */
  probes: number;
}

export const DEFAULT_SCALE_BENCH: ScaleBenchOptions = { hosts: 1000, vms: 10_000, moves: 1000, parallelMoves: 50, probes: 10 };

/** The goals of issue #16, item 3. */
const GOALS = { rssBytes: 200 * 2 ** 20, reconcileP99Ms: 50, latencyRatio: 1.5 };

/**
 * Move `vm` live `n` times, one at a time, wherever the scheduler places it (a named target could
 * be full at size); create → Succeeded of each.
 */
async function probeLatency(bc: BenchCluster, vm: string, n: number, tag: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${tag}-${i}`;
    const t0 = Date.now();
    await createMove(bc.api, name, vm, { mode: 'Live' });
    out.push((await waitEnded(bc, name)) - t0);
  }
  return out;
}

export async function benchScale(o: ScaleBenchOptions = DEFAULT_SCALE_BENCH, log: (s: string) => void = console.log): Promise<void> {
  log(`scale: ${o.vms} VMs on ${o.hosts} sim hosts (agents in this process), then ${o.moves} moves at a limit of ${o.parallelMoves}; controller in its own process`);
  const t0 = Date.now();
  // The simulated hosts share one identity, so API Priority and Fairness would queue all of them
  // as one flow (1,000 real hosts are 1,000 users it spreads fairly): the bench turns it off and
  // sizes the in-flight limits for the fleet instead.
  const bc = await startBenchCluster({
    nodes: o.hosts,
    apiserverArgs: ['--enable-priority-and-fairness=false', `--max-requests-inflight=${Math.max(400, o.hosts * 3)}`, `--max-mutating-requests-inflight=${Math.max(200, o.hosts)}`],
  });
  log(`  ${o.hosts} agents up after ${fmtMs(Date.now() - t0)}`);
  const port = await freePort();
  await startBenchController(bc, { parallelMoves: o.parallelMoves, outboundPerNode: 2, inboundPerNode: 2, metricsAddress: `127.0.0.1:${port}` });
  const scrape = async (): Promise<string> => {
    for (let i = 0; ; i++) {
      try {
        return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      } catch (err) {
        if (i > 50) throw err;
        await sleep(200);
      }
    }
  };

  const rss = { max: 0, samples: [] as { at: string; bytes: number }[] };
  const sampler = setInterval(() => {
    const b = procRssBytes(bc.fleet.controller?.child.pid);
    if (Number.isFinite(b)) rss.max = Math.max(rss.max, b);
  }, 250);
  const note = (at: string) => rss.samples.push({ at, bytes: procRssBytes(bc.fleet.controller?.child.pid) });
  const node = (i: number) => `node-${String(i % o.hosts).padStart(3, '0')}`;
  try {
    await scrape();
    note('started, no VMs');

    // Idle: one VM in the cluster, moved alone.
    await createVms(bc.api, [{ name: 'probe', node: node(0) }]);
    const idle = await probeLatency(bc, 'probe', o.probes, 'idle');
    note('after idle probes');

    log(`\ncreating ${o.vms - 1} more VMs …`);
    const tv = Date.now();
    await createVms(bc.api, Array.from({ length: o.vms - 1 }, (_, i) => ({ name: `vm-${i}`, node: node(i) })));
    log(`  ${o.vms} VMs running after ${fmtMs(Date.now() - tv)}`);
    await sleep(5000); // let the controller's caches and queues settle
    note(`${o.vms} VMs, idle`);

    // 1,000 moves, each of a different VM, spread over every source host; the scheduler picks targets.
    const before = histogramBuckets(await scrape(), 'vmove_reconcile_duration_seconds', 'kind');
    const stride = Math.max(1, Math.floor((o.vms - 1) / o.moves));
    const names = Array.from({ length: o.moves }, (_, i) => ({ name: `scale-${i}`, vm: `vm-${(i * stride) % (o.vms - 1)}` }));
    const tm = Date.now();
    for (let i = 0; i < names.length; i += 50) await Promise.all(names.slice(i, i + 50).map((m) => createMove(bc.api, m.name, m.vm)));
    const ends = await Promise.all(names.map((m) => waitEnded(bc, m.name, 3_600_000)));
    const makespan = Math.max(...ends) - tm;
    const after = histogramBuckets(await scrape(), 'vmove_reconcile_duration_seconds', 'kind');
    note(`after ${o.moves} moves`);

    // At full size: the same single move again.
    const loaded = await probeLatency(bc, 'probe', o.probes, 'loaded');
    note('after loaded probes');

    log('');
    log(`  ${o.moves} moves Succeeded in ${fmtMs(makespan)} (${(o.moves / (makespan / 1000)).toFixed(1)} moves/s)`);
    log(table([['controller RSS', 'bytes'], ...rss.samples.map((s) => [s.at, fmtBytes(s.bytes)]), ['max, sampled every 250 ms', fmtBytes(rss.max)]]));
    const reconcileRows: (string | number)[][] = [['reconcile duration over the moves', 'reconciles', 'p50', 'p99']];
    let worstP99 = 0;
    for (const [kind, buckets] of after) {
      const p99 = quantileBetween(before.get(kind), buckets, 99);
      if (p99.count === 0) continue;
      worstP99 = Math.max(worstP99, p99.value * 1000);
      reconcileRows.push([kind, p99.count, fmtMs(quantileBetween(before.get(kind), buckets, 50).value * 1000), fmtMs(p99.value * 1000)]);
    }
    log('');
    log(table(reconcileRows));
    log('  from vmove_reconcile_duration_seconds (buckets 5, 10, 25, 50, 100 ms, …; interpolated inside a bucket as histogram_quantile does)');
    const idleP50 = percentile(idle, 50);
    const loadedP50 = percentile(loaded, 50);
    log('');
    log(table([
      ['one live move, create → Succeeded', 'p50', 'p99'],
      [`idle (1 VM, ${o.hosts} hosts)`, fmtMs(idleP50), fmtMs(percentile(idle, 99))],
      [`at size (${o.vms} VMs, after the moves)`, fmtMs(loadedP50), fmtMs(percentile(loaded, 99))],
    ]));
    log('');
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    log(table([
      ['goal', 'figure', 'target', ''],
      ['controller RSS (max)', fmtBytes(rss.max), `≤ ${fmtBytes(GOALS.rssBytes)}`, verdict(rss.max <= GOALS.rssBytes)],
      ['reconcile p99 (worst kind)', fmtMs(worstP99), `≤ ${GOALS.reconcileP99Ms} ms`, verdict(worstP99 <= GOALS.reconcileP99Ms)],
      ['single move at size ÷ idle (p50)', `${(loadedP50 / idleP50).toFixed(2)}×`, `≤ ${GOALS.latencyRatio}×`, verdict(loadedP50 / idleP50 <= GOALS.latencyRatio)],
    ]));
  } finally {
    clearInterval(sampler);
    await bc.stop();
  }
}
