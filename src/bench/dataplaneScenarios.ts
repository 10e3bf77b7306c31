// What the data-plane benchmark moves, what one migration yields, and how the two tools'
// results are put side by side. Pure.
import type { MoveRequestPolicy } from '../api/types';
import type { GuestPause } from './dataplaneConsole';
import { table } from './stats';

export interface Scenario {
  name: string;
  image: string;
  memoryMiB: number;
  /** The guest keeps rewriting this much of its memory (vmove.dirty_mib). */
  dirtyMiB: number;
  /** Link cap for both tools (vmove: policy.bandwidthMiBps; virsh: --bandwidth); absent = none. */
  bandwidthMiBps?: number;
  /** Heartbeats the guest prints before the move (boot done, the dirtier at full speed). */
  settleHeartbeats: number;
  /** virsh gets this long before its migration is aborted. */
  virshTimeoutMs: number;
  /** The MoveRequest policies vmove moves the guest with (the scenario's link cap is added). */
  vmove: { label: string; policy: MoveRequestPolicy }[];
  /** Which of issue #16's goals this scenario's figures are held to. */
  goals?: 'freeLink' | 'cappedLink';
}

/**
 * Issue #16, item 4. Free link (1 GiB guest): bytes ≤ 1.5× libvirt's, downtime and guest stall
 * ≤ libvirt's. Capped link: converged every run, QEMU's time ≤ 0.75 × the 43 s measured before.
 */
export const GOALS = { bytesRatio: 1.5, downtimeRatio: 1, stallRatio: 1, cappedMs: 0.75 * 43_000 };

const DEFAULT_POLICY = { label: 'vmove', policy: {} };
/** The capped link's goal is judged over three runs of the default policy. */
const CAPPED_RUNS = [DEFAULT_POLICY, { label: 'vmove run 2', policy: {} }, { label: 'vmove run 3', policy: {} }];
const PLAINTEXT_LABEL = 'vmove plaintext';
/** The full ladder: after auto-converge, post-copy (off by default: a failure in post-copy loses the guest). */
const POST_COPY = { label: 'vmove +post-copy', policy: { allowPostCopy: true } };
/** The same move with its stream in plaintext: what TLS (the default) costs, same guest, same run. */
const PLAINTEXT = { label: PLAINTEXT_LABEL, policy: { insecureMigration: true } };

export const SCENARIOS: Scenario[] = [
  { name: '1 GiB guest rewriting 256 MiB', image: 'testguest', memoryMiB: 1024, dirtyMiB: 256, settleHeartbeats: 5, virshTimeoutMs: 60_000, vmove: [DEFAULT_POLICY, PLAINTEXT], goals: 'freeLink' },
  { name: '256 MiB guest rewriting 64 MiB', image: 'testguest', memoryMiB: 256, dirtyMiB: 64, settleHeartbeats: 5, virshTimeoutMs: 60_000, vmove: [DEFAULT_POLICY, PLAINTEXT] },
  {
    name: '1 GiB guest rewriting 256 MiB, link capped at 100 MiB/s',
    image: 'testguest',
    memoryMiB: 1024,
    dirtyMiB: 256,
    bandwidthMiBps: 100,
    settleHeartbeats: 5,
    virshTimeoutMs: 60_000,
    vmove: [...CAPPED_RUNS, POST_COPY],
    goals: 'cappedLink',
  },
];

/** --quick: the small guest only, on a free link and on one capped below its dirty rate. */
export const QUICK_SCENARIOS: Scenario[] = [
  SCENARIOS[1]!,
  { ...SCENARIOS[1]!, name: '256 MiB guest rewriting 64 MiB, link capped at 32 MiB/s', bandwidthMiBps: 32, vmove: [DEFAULT_POLICY, POST_COPY] },
];

export interface MigrationRun {
  /** vmove (and its policy) or libvirt. */
  tool: string;
  converged: boolean;
  /** How it ended: the rung vmove finished on, or libvirt's defaults / the abort. */
  how: string;
  /** The hypervisor's migration time (QEMU total-time, libvirt's time elapsed). */
  migrationMs: number;
  /** From the request to its end (vmove: MoveRequest created → terminal; virsh: the command). */
  wallMs: number;
  /** Stop-and-copy downtime the hypervisor reports. */
  downtimeMs?: number;
  bytesSent: number;
  /** What was still to send when it ended (0 when it converged). */
  bytesLeft?: number;
  /** The highest dirty rate the hypervisor reported during the migration. */
  maxDirtyRateBytesPerSecond: number;
  /** The guest's own view: its longest stand-still (see dataplaneConsole). */
  guestPause?: GuestPause | undefined;
  /** vmove: from the end of QEMU's migration to the target running (SwitchingOver). */
  switchOverMs?: number;
}

const MiB = 1024 * 1024;
const sec = (ms: number | undefined): string => (ms === undefined ? '–' : `${(ms / 1000).toFixed(1)} s`);
const msec = (ms: number | undefined): string => (ms === undefined ? '–' : `${Math.round(ms)} ms`);
const mib = (b: number | undefined): string => (b === undefined ? '–' : `${Math.round(b / MiB)} MiB`);
const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined || b === 0 ? '–' : `${(a / b).toFixed(2)}×`);

export interface ScenarioResult {
  scenario: Scenario;
  vmove: MigrationRun[];
  libvirt: MigrationRun;
}

/** One row per tool per scenario, then the ratios vmove/libvirt of each scenario. */
export function report(results: ScenarioResult[]): string {
  const rows: (string | number)[][] = [
    ['scenario', 'tool', 'converged', 'how', 'hypervisor time', 'wall', 'downtime', 'guest stall', 'sent', 'left', 'max dirty rate'],
  ];
  for (const { scenario, vmove, libvirt } of results) {
    for (const [i, r] of [...vmove, libvirt].entries()) {
      rows.push([
        i === 0 ? scenario.name : '',
        r.tool,
        r.converged ? 'yes' : 'NO',
        r.how,
        sec(r.migrationMs),
        sec(r.wallMs),
        msec(r.downtimeMs),
        msec(r.guestPause?.pauseMs),
        mib(r.bytesSent),
        mib(r.bytesLeft),
        `${Math.round(r.maxDirtyRateBytesPerSecond / MiB)} MiB/s`,
      ]);
    }
  }
  const ratios: (string | number)[][] = [['scenario', 'tool', 'hypervisor time', 'wall', 'downtime', 'guest stall', 'sent']];
  for (const { scenario, vmove, libvirt } of results) {
    for (const [i, v] of vmove.entries()) {
      const both = v.converged && libvirt.converged;
      ratios.push([
        i === 0 ? scenario.name : '',
        v.tool,
        ...(both
          ? [ratio(v.migrationMs, libvirt.migrationMs), ratio(v.wallMs, libvirt.wallMs), ratio(v.downtimeMs, libvirt.downtimeMs), ratio(v.guestPause?.pauseMs, libvirt.guestPause?.pauseMs), ratio(v.bytesSent, libvirt.bytesSent)]
          : [`vmove ${v.converged ? 'converged' : 'did not converge'}, libvirt ${libvirt.converged ? 'converged' : 'did not'}`, '', '', '', '']),
      ]);
    }
  }
  // What TLS costs: the default (TLS) run over the plaintext run of the same scenario.
  const tlsRows: (string | number)[][] = [['scenario', 'hypervisor time', 'wall', 'downtime', 'guest stall', 'sent']];
  for (const { scenario, vmove } of results) {
    const tls = vmove.find((v) => v.tool === DEFAULT_POLICY.label);
    const plain = vmove.find((v) => v.tool === PLAINTEXT_LABEL);
    if (!tls || !plain) continue;
    tlsRows.push(
      tls.converged && plain.converged
        ? [scenario.name, ratio(tls.migrationMs, plain.migrationMs), ratio(tls.wallMs, plain.wallMs), ratio(tls.downtimeMs, plain.downtimeMs), ratio(tls.guestPause?.pauseMs, plain.guestPause?.pauseMs), ratio(tls.bytesSent, plain.bytesSent)]
        : [scenario.name, `TLS ${tls.converged ? 'converged' : 'did not converge'}, plaintext ${plain.converged ? 'converged' : 'did not'}`, '', '', '', ''],
    );
  }
  const goals = goalRows(results);
  const switchOvers = results.flatMap((r) => r.vmove.map((v) => v.switchOverMs)).filter((v): v is number => v !== undefined);
  return [
    table(rows),
    '',
    'vmove / libvirt:',
    table(ratios),
    '',
    ...(tlsRows.length > 1 ? ['vmove TLS (the default) / vmove plaintext (spec.policy.insecureMigration), same guest, same run:', table(tlsRows), ''] : []),
    ...(goals.length > 1 ? ['goals (issue #16, item 4):', table(goals), ''] : []),
    'hypervisor time: QEMU\'s total-time of the migration (vmove started the target before) vs libvirt\'s "Time elapsed"',
    '(starting the target included); wall: vmove MoveRequest created → done (placement, target start, verification,',
    'clean-up included) vs the virsh command; downtime: stop-and-copy as the hypervisor reports it; guest stall: the',
    'guest\'s longest wait between two heartbeats during the move less the usual interval, read from its serial console',
    'on both hosts (±0.1 s), the same measure for both tools; sent/left: memory bytes sent, and still to send at the end.',
    ...(switchOvers.length ? [`vmove switch-over (QEMU done → target running): ${switchOvers.map((v) => msec(v)).join(', ')}`] : []),
  ].join('\n');
}

/** Each goal beside its figure: the free link's ratios for every vmove run, the capped link's time for each default run. */
function goalRows(results: ScenarioResult[]): (string | number)[][] {
  const rows: (string | number)[][] = [['goal', 'scenario', 'tool', 'figure', 'target', '']];
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  for (const { scenario, vmove, libvirt } of results) {
    if (scenario.goals === 'freeLink') {
      for (const v of vmove) {
        if (!v.converged || !libvirt.converged) {
          rows.push(['bytes, downtime, stall ÷ libvirt', scenario.name, v.tool, v.converged ? 'libvirt did not converge' : 'did not converge', '', 'MISSED']);
          continue;
        }
        const r = (a: number | undefined, b: number | undefined) => (a === undefined || !b ? undefined : a / b);
        for (const [goal, value, target] of [
          ['bytes sent ÷ libvirt', r(v.bytesSent, libvirt.bytesSent), GOALS.bytesRatio],
          ['downtime ÷ libvirt', r(v.downtimeMs, libvirt.downtimeMs), GOALS.downtimeRatio],
          ['guest stall ÷ libvirt', r(v.guestPause?.pauseMs, libvirt.guestPause?.pauseMs), GOALS.stallRatio],
        ] as const) {
          rows.push([goal, scenario.name, v.tool, value === undefined ? '–' : `${value.toFixed(2)}×`, `≤ ${target.toFixed(1)}×`, value === undefined ? '' : verdict(value <= target)]);
        }
      }
    }
    if (scenario.goals === 'cappedLink') {
      for (const v of vmove.filter((x) => CAPPED_RUNS.some((c) => c.label === x.tool))) {
        rows.push(['converged, hypervisor time', scenario.name, v.tool, v.converged ? sec(v.migrationMs) : 'did not converge', `≤ ${sec(GOALS.cappedMs)}`, verdict(v.converged && v.migrationMs <= GOALS.cappedMs)]);
      }
    }
  }
  return rows;
}
