// Evacuation makespan against its lower bound. 200 VMs live on the first half of 20 sim hosts;
// one HostEvacuation per loaded host empties them all at once into the other half. However well
// the moves are scheduled, the bytes must cross the links, at most `streams` at a time, where
// streams = min(cluster limit, sources × outbound limit, targets × inbound limit). The lower bound
// is bytes ÷ (streams × link bandwidth); the ratio says what scheduling and per-move overhead cost.
import { parseBytes } from '../api/quantity';
import type { HostEvacuation, MoveRequest } from '../api/types';
import { EVACUATION_LABEL } from '../controller/limits';
import { vmovePath } from '../kube/paths';
import { createVms, startBenchCluster } from './benchCluster';
import { fmtMs, table } from './stats';
import { streamUse } from './streamUse';
import { setTimeout as sleep } from 'node:timers/promises';

export interface EvacuationBenchOptions {
  hosts: number;
  vms: number;
  vmMemory: string;
  bandwidthMiBps: number;
  /** Simulated seconds per real second. */
  timeScale: number;
  parallelMoves: number;
  perNode: number;
}

export const DEFAULT_EVACUATION_BENCH: EvacuationBenchOptions = {
  hosts: 20,
  vms: 200,
  vmMemory: '8Gi',
  bandwidthMiBps: 1000,
  timeScale: 2,
  parallelMoves: 10,
  perNode: 2,
};

export async function benchEvacuation(o: EvacuationBenchOptions = DEFAULT_EVACUATION_BENCH, log: (s: string) => void = console.log): Promise<void> {
  const sources = Math.floor(o.hosts / 2);
  const targets = o.hosts - sources;
  log(`evacuation: ${o.vms} VMs of ${o.vmMemory} on ${sources} hosts, evacuated at once into ${targets} hosts; sim link ${o.bandwidthMiBps} MiB/s, time ×${o.timeScale}`);
  const bc = await startBenchCluster({ nodes: o.hosts, simOptions: { bandwidthMiBps: o.bandwidthMiBps, timeScale: o.timeScale } });
  try {
    bc.fleet.startController(['--identity', 'bench', '--parallel-moves', String(o.parallelMoves), '--outbound-per-node', String(o.perNode), '--inbound-per-node', String(o.perNode), '--workers', '16']);
    const node = (i: number) => `node-${String(i).padStart(3, '0')}`;
    const vms = Array.from({ length: o.vms }, (_, i) => ({ name: `vm-${i}`, node: node(i % sources) }));
    await createVms(bc.api, vms, { memory: o.vmMemory });

    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: sources }, (_, i) =>
        bc.api.create(vmovePath('hostevacuations'), {
          apiVersion: 'vmove.dev/v1alpha1',
          kind: 'HostEvacuation',
          metadata: { name: `drain-${node(i)}` },
          spec: { nodeName: node(i), mode: 'Live', maxParallel: o.perNode },
        }),
      ),
    );
    let done: HostEvacuation[] = [];
    for (;;) {
      const list = await bc.api.get<{ items: HostEvacuation[] }>(vmovePath('hostevacuations'));
      done = list.items.filter((e) => ['Succeeded', 'Failed', 'Cancelled'].includes(e.status?.phase ?? ''));
      if (done.length === sources) break;
      if (Date.now() - t0 > 3_600_000) throw new Error('evacuations did not finish within an hour');
      await sleep(250);
    }
    const makespanMs = Date.now() - t0;

    const bytes = o.vms * parseBytes(o.vmMemory);
    const streams = Math.min(o.parallelMoves, sources * o.perNode, targets * o.perNode);
    const lowerBoundMs = (bytes / (streams * o.bandwidthMiBps * 2 ** 20 * o.timeScale)) * 1000;
    const moved = [...bc.moves.values()].filter((m) => m.phase === 'Succeeded').length;
    log('');
    log(
      table([
        ['VMs', 'memory moved', 'streams (limits)', 'lower bound', 'makespan', 'ratio', 'moves succeeded', 'evacuations'],
        [
          o.vms,
          `${(bytes / 2 ** 30).toFixed(0)} GiB`,
          `${streams} (cluster ${o.parallelMoves}, ${o.perNode}/node)`,
          fmtMs(lowerBoundMs),
          fmtMs(makespanMs),
          (makespanMs / lowerBoundMs).toFixed(2),
          moved,
          done.map((e) => e.status?.phase).join(',').split(',').filter((p) => p === 'Succeeded').length + ` of ${sources} Succeeded`,
        ],
      ]),
    );
    log(`  lower bound = ${(bytes / 2 ** 30).toFixed(0)} GiB ÷ (${streams} streams × ${o.bandwidthMiBps} MiB/s × time ×${o.timeScale}); it ignores pages re-sent because the guests dirty memory and each move's fixed steps`);
    const own = await bc.api.get<{ items: MoveRequest[] }>(`${vmovePath('moverequests')}?labelSelector=${encodeURIComponent(EVACUATION_LABEL)}`);
    const use = streamUse(own.items.map((m) => m.status?.history ?? []), streams, { start: t0, end: t0 + makespanMs });
    const pct = (s: number): string => `${s.toFixed(0)} s (${((100 * s) / use.capacitySeconds).toFixed(0)} %)`;
    log('');
    log(
      table([
        ['stream-seconds', 'bytes on the wire', 'held before the bytes', 'held after the bytes', 'idle, no move'],
        [use.capacitySeconds.toFixed(0), pct(use.transferSeconds), pct(use.heldBeforeSeconds), pct(use.heldAfterSeconds), pct(use.unheldSeconds)],
      ]),
    );
  } finally {
    await bc.stop();
  }
}
