// The watch's rows and screens from MoveRequests a real move wrote (fixtures/: taken from the
// API server during test/integration/kubectl-plugin.test.ts — a 2 GiB guest crossing a 64 MiB/s
// sim link, and a move whose migration the sim failed), plus a waiting status the controller's
// own status code writes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MoveRequest } from '../../../src/api/types';
import { waitingWithoutMove } from '../../../src/controller/moverequest/status';
import { historyTable } from '../../../src/plugin/historyTable';
import { evacuationFor, moveRequestFor } from '../../../src/plugin/manifests';
import { exitCodeOf, moveRow } from '../../../src/plugin/moveRow';
import { plainLine, screen, summary } from '../../../src/plugin/render';
import { nextRateSample } from '../../../src/plugin/transferRate';

const fixture = (name: string): MoveRequest => JSON.parse(readFileSync(join(__dirname, 'fixtures', `${name}.json`), 'utf8')) as MoveRequest;
const MiB = 2 ** 20;

test('a live move mid-migration: bar, bytes, dirty vs measured transfer rate, iteration and rung, ETA, downtime', () => {
  const earlier = fixture('migrating-earlier');
  const now = fixture('migrating');
  // Two status updates 2 s apart, as the watch receives them.
  const rate = nextRateSample(nextRateSample(undefined, earlier, 0), now, 2_000).bytesPerSecond!;
  expect(rate).toBe((1230709457 - 1095619314) / 2);
  const row = moveRow(now, { transferBytesPerSecond: rate });
  expect(row).toEqual({
    name: 'big-49xfk',
    vm: 'big',
    phase: 'Migrating',
    terminal: false,
    waiting: false,
    moveType: 'Live',
    attempt: 1,
    source: 'node-a',
    target: 'node-b',
    percent: 43,
    sentBytes: 1230709457,
    totalBytes: 2 * 1024 * MiB,
    dirtyBytesPerSecond: 16 * MiB,
    transferBytesPerSecond: rate,
    iteration: 1,
    rung: { index: 0, of: 4, name: 'max downtime 75 ms' },
    // What remains over what the link gains on the guest's dirtying.
    eta: 1224451555 / (rate - 16 * MiB),
    downtime: '≤ 75 ms',
    note: 'placed on node-b',
  });
  expect(screen([row], { width: 250 })).toEqual([
    '1 move: 1 in flight',
    '',
    'MOVE       VM   PHASE      ROUTE            PROGRESS                     SENT / TOTAL       DIRTY vs XFER             ITER RUNG                  ETA  DOWNTIME  NOTE',
    'big-49xfk  big  Migrating  node-a → node-b  [#########...........]  43%  1.1 GiB / 2.0 GiB  16.0 MiB/s vs 64.4 MiB/s  #1 1/4 max downtime 75 ms  24s  ≤ 75 ms   placed on node-b',
  ]);
  // A narrow terminal cuts lines instead of wrapping them (a wrapped line breaks the redraw).
  expect(screen([row], { width: 60 }).every((l) => l.length <= 60)).toBe(true);
  expect(plainLine(row)).toBe('big-49xfk Migrating node-a->node-b 43% sent=1.1 GiB/2.0 GiB dirty=16.0 MiB/s xfer=64.4 MiB/s iter=1 rung=1/4 (max downtime 75 ms) eta=24s downtime ≤ 75 ms | placed on node-b');
  // Before two updates were seen there is no rate, so no ETA: never a made-up figure.
  expect(moveRow(now)).not.toHaveProperty('eta');
  // A guest dirtying as fast as the link carries does not converge on this rung.
  expect(moveRow(now, { transferBytesPerSecond: 16 * MiB }).eta).toBe('never');
});

test('ended moves: Succeeded at 100 % (exit 0), Failed with its reason (exit 1)', () => {
  const ok = moveRow(fixture('succeeded'));
  expect(ok).toMatchObject({ phase: 'Succeeded', terminal: true, percent: 100, note: 'Succeeded: placed on node-b' });
  expect(ok).not.toHaveProperty('eta');
  expect(ok).not.toHaveProperty('downtime');
  const failed = moveRow(fixture('failed'), { qualify: true });
  expect(plainLine(failed)).toBe('default/doomed-r822p Failed node-a->node-b 0% sent=0 B/256 MiB iter=1 rung=1/4 (max downtime 75 ms) | Failed: Migrating: migration failed: sim: injected failure in migrate');
  expect(summary([ok])).toBe('1 move: 1 Succeeded. All ended: Succeeded.');
  expect(summary([ok, failed])).toBe('2 moves: 1 Succeeded, 1 Failed. All ended.');
  expect(screen([ok], { width: 250 })[3]).toMatch(/^big-49xfk\s+big\s+Succeeded\s+node-a → node-b\s+\[#{20}\] 100%\s+2\.7 GiB \/ 2\.0 GiB/);
  expect(exitCodeOf([ok])).toBe(0);
  expect(exitCodeOf([ok, failed])).toBe(1);
});

test('a move that waits says for what', () => {
  const base = fixture('migrating');
  const mr: MoveRequest = {
    ...base,
    metadata: { ...base.metadata, name: 'db-2' },
    spec: { vmName: 'db' },
    status: waitingWithoutMove(undefined, 'WaitingForVM', 'VirtualMachine db is being moved by MoveRequest db-1; this request starts when that one ends', '2030-01-01T00:00:00.000000Z', 1),
  };
  const row = moveRow(mr);
  expect(row).toMatchObject({ phase: 'Pending', waiting: true, downtime: '-', note: 'waiting (WaitingForVM): VirtualMachine db is being moved by MoveRequest db-1; this request starts when that one ends' });
  expect(summary([row, moveRow(base)])).toBe('2 moves: 1 waiting, 1 in flight');
});

test('history: one row per entry with its duration, the total, and an open entry marked', () => {
  const lines = historyTable(fixture('succeeded'), 0);
  expect(lines[0]).toBe('MoveRequest default/big-49xfk (VM big): Succeeded, Live node-a → node-b');
  expect(lines.slice(2, 7)).toEqual([
    'PHASE            ATTEMPT  STARTED                   DURATION  MESSAGE',
    'Pending          1        2026-12-04T23:23:01.454Z  10ms',
    'Scheduling       1        2026-12-04T23:23:01.464Z  14ms',
    'PreparingTarget  1        2026-12-04T23:23:01.478Z  8ms       placed on node-b',
    'Migrating        1        2026-12-04T23:23:01.486Z  43s',
  ]);
  expect(lines[lines.length - 1]).toBe('total 44s');
  const running = historyTable(fixture('migrating'), Date.parse('2026-12-04T23:23:31.486Z'));
  expect(running.find((l) => l.startsWith('Migrating'))).toMatch(/Z  30s\+$/);
  expect(running[running.length - 1]).toBe('running for 30s');
});

test('the objects it creates carry only what was asked (the API server defaults the rest, as for a manifest)', () => {
  expect(moveRequestFor({ kind: 'move', vm: 'web', watch: false }, 'prod')).toEqual({ apiVersion: 'vmove.dev/v1alpha1', kind: 'MoveRequest', metadata: { generateName: 'web-', namespace: 'prod' }, spec: { vmName: 'web' } });
  expect(moveRequestFor({ kind: 'move', vm: 'web', selector: { zone: 'west' }, mode: 'Cold', memory: '4Gi', watch: true }, 'default').spec).toEqual({ vmName: 'web', mode: 'Cold', target: { nodeSelector: { zone: 'west' } }, resources: { memory: '4Gi' } });
  expect(evacuationFor('node-a', true)).toEqual({ apiVersion: 'vmove.dev/v1alpha1', kind: 'HostEvacuation', metadata: { generateName: 'node-a-plan-' }, spec: { nodeName: 'node-a', dryRun: true } });
  expect(evacuationFor('n'.repeat(63), false).metadata.generateName).toHaveLength(49);
});
