// `vmove plan evacuate NODE`: what an evacuation of NODE would do now — which VM goes where, by
// which kind of move, in which order, and why every other host was rejected — moving nothing.
// It reads the cluster as the controller does and runs the same decision a HostEvacuation with
// `spec.dryRun: true` runs, so the two always agree.
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import type { HostEvacuation, MoveMode, PlannedMove } from '../api/types';
import { API_VERSION } from '../api/types';
import { ClusterView } from '../controller/clusterView';
import { defaultConfig } from '../controller/config';
import { decideEvacuation } from '../controller/hostevacuation/decide';
import { observeEvacuation } from '../controller/hostevacuation/facts';
import { parseLabels } from '../controller/hostevacuation/vms';
import { KubeApi } from '../kube/api';

const USAGE = `usage: vmove plan evacuate NODE [options]

Shows what evacuating NODE would do now, and moves nothing: for each VM, in the order the moves
would run, the target host, the kind of move and its variant, why — and why each other host was
rejected. The same plan as a HostEvacuation with spec.dryRun: true.

  --kubeconfig PATH               API server credentials (default: $KUBECONFIG or ~/.kube/config)
  --namespace NS                  where the agents' Leases live (default vmove-system)
  --mode Auto|Live|Cold|Rebuild   how the VMs would move (default Auto)
  --selector k=v,…                only the VMs with these labels (spec.vmSelector.matchLabels)
  --target-selector k=v,…         only targets with these labels (spec.target.nodeSelector)
  --dead-host-after-seconds N     when a host with an expired agent Lease counts as dead (default 40)
  -o, --output table|json|yaml    output format (default table)
`;

const MODES: readonly MoveMode[] = ['Auto', 'Live', 'Cold', 'Rebuild'];
const SYNC_TIMEOUT_MS = 30_000;

export interface EvacuationPlan {
  node: string;
  hostState?: 'Alive' | 'Dead';
  mode: MoveMode;
  message?: string;
  plan: PlannedMove[];
}

export async function planCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        kubeconfig: { type: 'string' },
        namespace: { type: 'string', default: 'vmove-system' },
        mode: { type: 'string', default: 'Auto' },
        selector: { type: 'string' },
        'target-selector': { type: 'string' },
        'dead-host-after-seconds': { type: 'string' },
        output: { type: 'string', short: 'o', default: 'table' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    return usageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const [what, node, ...extra] = positionals;
  if (what !== 'evacuate' || !node || extra.length) return usageError(what && what !== 'evacuate' ? `unknown plan "${what}"` : 'which node?');
  const mode = values.mode as MoveMode;
  if (!MODES.includes(mode)) return usageError(`--mode must be one of ${MODES.join(', ')}`);
  const output = values.output!;
  if (!['table', 'json', 'yaml'].includes(output)) return usageError('--output must be table, json or yaml');
  let vmLabels: Record<string, string> | undefined;
  let targetLabels: Record<string, string> | undefined;
  try {
    vmLabels = parseLabels(values.selector);
    targetLabels = parseLabels(values['target-selector']);
  } catch (e) {
    return usageError((e as Error).message);
  }
  const deadAfter = values['dead-host-after-seconds'] === undefined ? defaultConfig().deadHostAfterSeconds : Number(values['dead-host-after-seconds']);
  if (!Number.isFinite(deadAfter) || deadAfter < 0) return usageError('--dead-host-after-seconds must be a number of seconds');

  const api = await KubeApi.fromFile(values.kubeconfig);
  const view = new ClusterView(api, values.namespace!, 0);
  try {
    view.start();
    await withTimeout(view.synced(), SYNC_TIMEOUT_MS, 'reading the cluster (are the vmove CRDs installed?)');
    const evacuation: HostEvacuation = {
      apiVersion: API_VERSION,
      kind: 'HostEvacuation',
      metadata: { name: `plan-${node}` },
      spec: {
        nodeName: node,
        mode,
        dryRun: true,
        ...(vmLabels ? { vmSelector: { matchLabels: vmLabels } } : {}),
        ...(targetLabels ? { target: { nodeSelector: targetLabels } } : {}),
      },
    };
    const { status } = decideEvacuation(observeEvacuation(view, evacuation, deadAfter, new Date(), defaultConfig().policyDefaults));
    const result: EvacuationPlan = { node, ...(status.hostState ? { hostState: status.hostState } : {}), mode, ...(status.message ? { message: status.message } : {}), plan: status.plan ?? [] };
    process.stdout.write(output === 'json' ? `${JSON.stringify(result, null, 2)}\n` : output === 'yaml' ? stringify(result) : planTable(result));
    return 0;
  } finally {
    view.stop();
    api.close();
  }
}

/** The plan as a person reads it: one line per VM, the rejected hosts indented below. */
export function planTable(p: EvacuationPlan): string {
  const placed = p.plan.filter((s) => s.targetNode).length;
  const head = `Plan to evacuate ${p.node} (host ${p.hostState ?? 'unknown'}, mode ${p.mode}): ${p.plan.length} VM${p.plan.length === 1 ? '' : 's'}, ${placed} with a target`;
  if (p.plan.length === 0) return `${head}.\n${p.message ? `${p.message}\n` : ''}`;
  const rows = [
    ['ORDER', 'VM', 'ACTION', 'STRATEGY', 'TARGET', 'TYPE', 'VARIANT', 'REASON'],
    ...p.plan.map((s) => [String(s.order), `${s.namespace}/${s.vmName}`, s.action ?? '-', s.strategy ?? '-', s.targetNode ?? '-', s.moveType ?? '-', s.variant ?? '-', s.reason]),
  ];
  const widths = rows[0]!.slice(0, -1).map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((cell, i) => (i < widths.length ? cell.padEnd(widths[i]!) : cell)).join('  ').trimEnd();
  const out = [head, '', line(rows[0]!)];
  p.plan.forEach((s, i) => {
    out.push(line(rows[i + 1]!));
    for (const b of s.blockers ?? []) out.push(`${' '.repeat(widths[0]! + 2)}blocked (${b.reason}): ${b.message}`);
    for (const r of s.rejected ?? []) out.push(`${' '.repeat(widths[0]! + 2)}rejected ${r.nodeName}: ${r.reason}`);
  });
  if (p.message) out.push('', p.message);
  return `${out.join('\n')}\n`;
}

function usageError(message: string): number {
  process.stderr.write(`vmove plan: ${message}\n\n${USAGE}`);
  return 2;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s ${what}`)), ms);
    }),
  ]);
}
