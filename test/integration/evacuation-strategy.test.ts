// Per-VM evacuation strategies end to end: one VM of each strategy on a real API server with the
// real controller and sim agents. The dry run lists every VM's action and blockers before anything
// moves; the evacuation then moves, stops, waits for a person and fails each VM as its strategy says.
import type { PlannedMove, VirtualMachine } from '../../src/api/types';
import { evacuationEvents, evacuationYaml, getEvacuation, listMoves, listVms, waitForEvacuation } from '../support/evacuationHelpers';
import { startVmoveEnv, vmYaml, type VmoveEnv } from '../support/vmoveEnv';

jest.setTimeout(240_000);

let env: VmoveEnv;

beforeAll(async () => {
  env = await startVmoveEnv({ nodes: [{ name: 'src', memory: '16Gi' }, { name: 't1', memory: '4Gi' }], nodeDefaults: { cpu: 16 } });
});

afterAll(async () => {
  await env?.stop();
});

/** vmYaml with a strategy and labels. */
function vm(name: string, o: Parameters<typeof vmYaml>[1] & { strategy?: string; labels?: Record<string, string> } = {}): string {
  let y = vmYaml(name, { node: 'src', ...o });
  if (o.labels) y = y.replace('  namespace: default\n', `  namespace: default\n  labels:\n${Object.entries(o.labels).map(([k, v]) => `    ${k}: ${v}\n`).join('')}`);
  if (o.strategy) y = y.replace('spec:\n', `spec:\n  evacuationStrategy: ${o.strategy}\n`);
  return y;
}

const policies = `apiVersion: vmove.dev/v1alpha1
kind: MovePolicy
metadata: { name: batch-shutdown }
spec:
  selectors: { vmSelector: { matchLabels: { tier: batch } } }
  evacuationStrategy: Shutdown
---
apiVersion: vmove.dev/v1alpha1
kind: MovePolicy
metadata: { name: slow-link }
spec:
  selectors: { vmSelector: { matchLabels: { link: slow } } }
  bandwidthMiBps: 10
  completionTimeoutPerGiB: 1
`;

const byName = (plan: PlannedMove[] | undefined): Record<string, PlannedMove> => Object.fromEntries((plan ?? []).map((p) => [p.vmName, p]));

describe('one VM of each strategy', () => {
  beforeAll(async () => {
    await env.apply(policies);
    await env.apply(
      [
        vm('s-live', { strategy: 'LiveMigrate' }),
        vm('s-maybe'),
        vm('s-cold', { strategy: 'Cold' }),
        vm('s-shut', { labels: { tier: 'batch' } }),
        vm('s-none', { strategy: 'None' }),
        vm('s-slow', { storage: 'Local', labels: { link: 'slow' } }),
        vm('s-huge', { memory: '8Gi' }),
      ].join('---\n'),
    );
    await env.waitFor('7 VMs running on src', async () => {
      const vms = await listVms(env);
      return vms.filter((v) => v.status?.nodeName === 'src' && v.status.phase === 'Running').length === 7;
    }, 90_000);
  });

  test('the dry run lists each VM with its strategy, where it came from, the action and every blocker; nothing moves', async () => {
    await env.apply(evacuationYaml('plan-src', { nodeName: 'src', dryRun: true }));
    const e = await waitForEvacuation(env, 'plan-src', ['Succeeded']);
    const p = byName(e.status!.plan);
    expect(p['s-live']).toMatchObject({ action: 'LiveMove', targetNode: 't1', strategy: 'LiveMigrate', strategySource: 'VirtualMachine' });
    expect(p['s-maybe']).toMatchObject({ action: 'LiveMove', strategy: 'LiveMigrateIfPossible', strategySource: 'Default' });
    expect(p['s-cold']).toMatchObject({ action: 'ColdMove', moveType: 'Cold', strategy: 'Cold' });
    expect(p['s-shut']).toMatchObject({ action: 'Shutdown', strategy: 'Shutdown', strategySource: 'MovePolicy', strategyPolicy: 'batch-shutdown' });
    expect(p['s-none']).toMatchObject({ action: 'WaitForPerson', blockers: [{ reason: 'StrategyNone' }] });
    expect(p['s-slow']).toMatchObject({ action: 'Fail', blockers: [{ reason: 'DiskCopyTooSlow' }] });
    expect(p['s-slow']!.blockers![0]!.message).toMatch(/at 10 MiB\/s, more than the move's timeout/);
    expect(p['s-huge']).toMatchObject({ action: 'Fail', blockers: [{ reason: 'NoHostWithRoom', message: expect.stringMatching(/t1: not enough memory/) }] });
    expect(e.status!.message).toMatch(/^dry run: 3 of 7 VMs on src have a target; 1 would be shut down and left on src; 1 would wait for a person \(evacuationStrategy None\); 2 cannot be moved now/);
    expect(await listMoves(env)).toEqual([]);
  });

  test('the evacuation: moves live and cold, stops Shutdown in place, waits for the None VM (condition, Event) until a person changes it, fails the blocked ones', async () => {
    await env.apply(evacuationYaml('drain-src', { nodeName: 'src', maxParallel: 3 }));
    // Everything but the None VM settles; the evacuation waits for a person and says so.
    const waiting = await env.waitFor('the evacuation to wait only for a person', async () => {
      const e = await getEvacuation(env, 'drain-src');
      const c = e?.status?.conditions?.find((x) => x.type === 'WaitingForPerson');
      return e?.status?.phase === 'Evacuating' && e.status.inProgress === 0 && e.status.pending === 1 && c?.status === 'True' ? e : undefined;
    }, 150_000);
    expect(waiting.status).toMatchObject({ succeeded: 4, failed: 2 });
    expect(waiting.status!.conditions!.find((c) => c.type === 'WaitingForPerson')!.message).toMatch(/default\/s-none/);
    expect(waiting.status!.conditions!.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'WaitingForPerson' });
    expect((await evacuationEvents(env, 'drain-src')).map((ev) => ev.reason)).toEqual(expect.arrayContaining(['WaitingForPerson', 'ShuttingDown']));
    const shut = (await env.vm('s-shut')) as VirtualMachine;
    expect(shut.spec.running).toBe(false);
    expect(shut.status).toMatchObject({ nodeName: 'src', phase: 'Stopped' });
    expect(shut.metadata.annotations?.['vmove.dev/stopped-by-evacuation']).toBe('drain-src');

    // A person decides: the None VM may move cold. The evacuation goes on and ends.
    await env.kubectl(['patch', 'virtualmachines.vmove.dev', 's-none', '-n', 'default', '--type', 'merge', '-p', '{"spec":{"evacuationStrategy":"Cold"}}']);
    const e = await waitForEvacuation(env, 'drain-src', ['Succeeded', 'Failed', 'Cancelled'], 120_000);
    expect(e.status).toMatchObject({ phase: 'Failed', total: 7, succeeded: 5, failed: 2, pending: 0, inProgress: 0 });
    expect(e.status!.message).toMatch(/^2 of 7 VMs could not be moved off src — /);
    expect(e.status!.message).toMatch(/default\/s-slow: .*more than the move's timeout/);
    expect(e.status!.conditions!.find((c) => c.type === 'WaitingForPerson')).toMatchObject({ status: 'False' });

    const types = Object.fromEntries((e.status!.moves ?? []).map((m) => [m.vmName, [m.phase, m.moveType]]));
    expect(types).toEqual({ 's-live': ['Succeeded', 'Live'], 's-maybe': ['Succeeded', 'Live'], 's-cold': ['Succeeded', 'Cold'], 's-none': ['Succeeded', 'Cold'] });
    const where = Object.fromEntries((await listVms(env)).map((v) => [v.metadata.name, v.status?.nodeName]));
    expect(where).toMatchObject({ 's-live': 't1', 's-maybe': 't1', 's-cold': 't1', 's-none': 't1', 's-shut': 'src', 's-slow': 'src', 's-huge': 'src' });
    expect(await env.runningOn('s-shut')).toEqual([]);
  });
});
