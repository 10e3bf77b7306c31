// vmove's side of the data-plane benchmark: the whole product on this machine — a local control
// plane, the controller, and two agents with the qemu driver — moving the guest because a
// MoveRequest asked for it, with vmove's default policy (the convergence ladder) plus the link
// cap of the scenario. Figures come from where vmove keeps them: the MoveRequest (phases,
// ladder rungs, dirty rate) and the source agent's record of the migrate step (QEMU's own
// total time, downtime and bytes).
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import { readFileSync } from 'node:fs';
import { AGENT_AUDIENCE } from '../protocol/host';
import { CA_CERT } from '../cluster/agentPki';
import { tokenFromTokenRequest } from '../kube/audienceToken';
import type { MoveRequest, VirtualMachine } from '../api/types';
import { AgentClient } from '../agent/client';
import type { OperationStatus } from '../protocol/operations';
import { startControlPlane, type ControlPlane } from '../cluster/controlPlane';
import { agentFromLease, type AgentInfo, type LeaseObject } from '../controller/clusterView';
import { vmFiles } from '../drivers/qemu/paths';
import { KubeApi } from '../kube/api';
import { leasePath, vmovePath } from '../kube/paths';
import { LocalFleet } from '../local/fleet';
import { rungsClimbed } from '../machines/ladder';
import { isTerminal } from '../machines/vocabulary';
import { HeartbeatClock, guestPause } from './dataplaneConsole';
import type { MigrationRun, Scenario } from './dataplaneScenarios';
import { setTimeout as sleep } from 'node:timers/promises';

const SOURCE = 'node-a';
const TARGET = 'node-b';
const NS = 'default';

/** How long the last attempt spent in Migrating, from the MoveRequest's history. */
function migratingMs(mr: MoveRequest): number {
  const h = mr.status?.history ?? [];
  const start = h.findIndex((e) => e.phase === 'Migrating' && e.attempt === (mr.status?.attempt ?? 1));
  if (start < 0) return 0;
  const end = h.slice(start + 1).find((e) => e.phase !== 'Migrating');
  return Date.parse(end?.startedAt ?? h[start]!.endedAt ?? '') - Date.parse(h[start]!.startedAt) || 0;
}

export class VmoveSide {
  private constructor(
    private readonly cp: ControlPlane,
    private readonly api: KubeApi,
    private readonly fleet: LocalFleet,
    private readonly agents: AgentClient,
  ) {}

  static async start(root: string, imagesDir: string): Promise<VmoveSide> {
    const cp = await startControlPlane({ dir: path.join(root, 'cluster'), crds: true, rbac: true });
    const api = await KubeApi.fromFile(cp.kubeconfigs.admin);
    await mkdir(root, { recursive: true });
    const fleet = new LocalFleet(api, { dir: root, controllerKubeconfig: cp.kubeconfigs.controller, agentKubeconfig: cp.kubeconfigs.agent, imagesDir }, { driver: 'qemu', cpu: 4, memory: '8Gi' });
    // As the controller calls agents: an audience-bound token, the vmove CA.
    const ca = readFileSync(path.join(fleet.agentPkiDir, CA_CERT), 'utf8');
    const token = tokenFromTokenRequest(api, { namespace: 'vmove-system', serviceAccount: 'vmove-controller', audience: AGENT_AUDIENCE });
    const side = new VmoveSide(cp, api, fleet, new AgentClient({ token, ca: () => ca, timeoutMs: 10_000 }));
    try {
      for (const node of [SOURCE, TARGET]) await fleet.addNode(node);
      fleet.startController();
      await side.until('both agents to hold their leases', async () => (await side.agentsAlive()).length === 2, 60_000);
    } catch (err) {
      await side.stop();
      throw err;
    }
    return side;
  }

  async stop(): Promise<void> {
    await this.fleet.stop();
    await this.agents.close();
    this.api.close();
    await this.cp.stop();
  }

  async migrate(s: Scenario, variant: Scenario['vmove'][number], name: string): Promise<MigrationRun> {
    const clock = new HeartbeatClock()
      .watch(vmFiles(this.fleet.nodes.get(SOURCE)!.host, `${NS}_${name}`).serialLog)
      .watch(vmFiles(this.fleet.nodes.get(TARGET)!.host, `${NS}_${name}`).serialLog);
    try {
      await this.api.create(vmovePath('virtualmachines', { namespace: NS }), {
        apiVersion: 'vmove.dev/v1alpha1',
        kind: 'VirtualMachine',
        metadata: { name, namespace: NS },
        spec: { image: s.image, cpu: 1, memory: `${s.memoryMiB}Mi`, nodeName: SOURCE, kernelArgs: `vmove.dirty_mib=${s.dirtyMiB}`, disks: [{ name: 'root', size: '1Gi', storage: 'SharedFile' }] },
      });
      await clock.waitFor(s.settleHeartbeats);
      const before = clock.last()!;

      const t0 = Date.now();
      await this.api.create(vmovePath('moverequests', { namespace: NS }), {
        apiVersion: 'vmove.dev/v1alpha1',
        kind: 'MoveRequest',
        metadata: { name, namespace: NS },
        spec: { vmName: name, mode: 'Live', target: { nodeName: TARGET }, policy: { ...variant.policy, ...(s.bandwidthMiBps ? { bandwidthMiBps: s.bandwidthMiBps } : {}) } },
      });
      let maxDirty = 0;
      const mr = await this.until(`MoveRequest ${name} to end`, async () => {
        const m = await this.api.find<MoveRequest>(vmovePath('moverequests', { namespace: NS, name }));
        maxDirty = Math.max(maxDirty, m?.status?.progress?.dirtyRateBytesPerSecond ?? 0);
        return m?.status?.phase && isTerminal(m.status.phase) ? m : undefined;
      }, 600_000);
      const wallMs = Date.parse(mr.status?.completionTime ?? '') - Date.parse(mr.metadata.creationTimestamp ?? '') || Date.now() - t0;
      const converged = mr.status?.phase === 'Succeeded';
      if (converged) await clock.waitFor(before + 3);
      clock.stop();

      const opId = (step: string) => `${mr.metadata.uid}.${mr.status?.attempt ?? 1}.${step}`;
      const migrate = await this.operation(SOURCE, opId('migrating'));
      const switchOver = converged ? await this.operation(TARGET, opId('switching-over')) : undefined;
      const m = migrate?.migration;
      const rungs = rungsClimbed((mr.status?.history ?? []).map((h) => h.message));
      const how = converged ? (rungs.at(-1) ?? 'first rung') : `failed: ${mr.status?.message ?? mr.status?.phase}`;
      // Earlier attempts rolled back: say why.
      const retries = (mr.status?.history ?? []).filter((h) => h.phase === 'RollingBack' && h.attempt < (mr.status?.attempt ?? 1)).map((h) => h.message);
      return {
        tool: variant.label,
        converged,
        how: `${how}${retries.length ? ` (attempt ${mr.status?.attempt}; before: ${retries.join('; ')})` : ''}`,
        // A cancelled QEMU migration forgets its counters: then the last progress the MoveRequest recorded tells.
        migrationMs: converged ? (m?.totalTimeMs ?? 0) : migratingMs(mr),
        wallMs,
        ...(converged && m?.downtimeMs !== undefined ? { downtimeMs: m.downtimeMs } : {}),
        bytesSent: converged ? (m?.memoryTransferredBytes ?? 0) + (m?.diskTransferredBytes ?? 0) : (mr.status?.progress?.memoryProcessedBytes ?? 0),
        bytesLeft: converged ? 0 : (mr.status?.progress?.memoryRemainingBytes ?? 0),
        maxDirtyRateBytesPerSecond: Math.max(maxDirty, m?.dirtyRateBytesPerSecond ?? 0),
        ...(converged ? { guestPause: guestPause(clock.samples(), before) } : {}),
        ...(migrate?.finishedAt && switchOver?.finishedAt ? { switchOverMs: Date.parse(switchOver.finishedAt) - Date.parse(migrate.finishedAt) } : {}),
      };
    } finally {
      clock.stop();
      await this.api.delete(vmovePath('moverequests', { namespace: NS, name })).catch(() => undefined);
      await this.api.delete(vmovePath('virtualmachines', { namespace: NS, name })).catch(() => undefined);
      await this.until(`VM ${name} to be deleted`, async () => !(await this.api.find<VirtualMachine>(vmovePath('virtualmachines', { namespace: NS, name }))), 120_000);
    }
  }

  private async agentsAlive(): Promise<AgentInfo[]> {
    const leases = await this.api.get<{ items: LeaseObject[] }>(leasePath({ namespace: 'vmove-system' }));
    return leases.items.map((l) => agentFromLease(l, Date.now())).filter((a): a is AgentInfo => !!a?.alive);
  }

  /** The record an agent keeps of one operation. */
  private async operation(node: string, opId: string): Promise<OperationStatus | undefined> {
    const agent = (await this.agentsAlive()).find((a) => a.node === node);
    return agent ? this.agents.getOperation({ endpoint: agent.endpoint, node }, opId) : undefined;
  }

  private async until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe().catch(() => undefined);
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
      await sleep(200);
    }
  }
}
