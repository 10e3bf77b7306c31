// vmove end to end with real guests: the whole stack of vmoveEnv (real API server, controller and
// agents) with agents running the qemu or libvirt driver and vmove's test guest (hack/guest),
// plus readers of the guest's own serial console, the witness of what happened to it:
//   vmove-boot disk_previous=P                 once per boot (P: the disk counter a previous life left)
//   vmove-heartbeat N cpus=C mem_kib=K disk=D  once a second (N lives in guest memory)
import { readFileSync } from 'node:fs';
import type { MoveRequest } from '../../src/api/types';
import type { DriverKind } from '../../src/protocol/host';
import { serialLogPath } from '../../src/drivers/libvirt/layout';
import { vmFiles } from '../../src/drivers/qemu/paths';
import { QmpClient } from '../../src/drivers/qemu/qmp';
import { setTimeout as sleep } from 'node:timers/promises';
import { guestKitImagesDir } from '../../src/local/guestKit';
import { moveYaml, startVmoveEnv, vmYaml, type EnvOptions, type VmoveEnv } from './vmoveEnv';

export type RealDriver = Extract<DriverKind, 'qemu' | 'libvirt'>;

/** Node capacity advertised to the controller: room for a few small guests each. */
const NODE_CPU = 4;
const NODE_MEMORY = '4Gi';

/** Three nodes (node-a, node-b, node-c) whose agents run `driver` with the guest kit as image folder. */
export async function startRealEnv(driver: RealDriver, nodes: EnvOptions['nodes'] = ['node-a', 'node-b', 'node-c'], more: Pick<EnvOptions, 'controllerArgs'> = {}): Promise<VmoveEnv> {
  return startVmoveEnv({
    ...more,
    nodes,
    imagesDir: guestKitImagesDir(),
    nodeDefaults: { driver, cpu: NODE_CPU, memory: NODE_MEMORY },
  });
}

export interface Heartbeat {
  n: number;
  cpus: number;
  memKiB: number;
  disk: number;
}

/** What a guest printed on one host's serial console. */
export interface ConsoleText {
  heartbeats: Heartbeat[];
  /** `disk_previous` of each boot, in order. */
  boots: number[];
}

export function parseConsole(text: string): ConsoleText {
  return {
    heartbeats: [...text.matchAll(/vmove-heartbeat (\d+) cpus=(\d+) mem_kib=(\d+) disk=(-?\d+)/g)].map((m) => ({
      n: Number(m[1]),
      cpus: Number(m[2]),
      memKiB: Number(m[3]),
      disk: Number(m[4]),
    })),
    boots: [...text.matchAll(/vmove-boot disk_previous=(\d+)/g)].map((m) => Number(m[1])),
  };
}

/**
 * The serial console of a VM on one node, read from the file its driver writes (the qemu driver
 * starts a new file per QEMU process; libvirt appends to one file per host).
 */
export class GuestConsole {
  private mark = '';

  constructor(
    private readonly env: VmoveEnv,
    readonly node: string,
    readonly vmId: string,
  ) {}

  get path(): string {
    const n = this.env.fleet.nodes.get(this.node);
    if (!n) throw new Error(`no fleet node ${this.node}`);
    return n.driver === 'libvirt' ? serialLogPath(n.host, this.vmId) : vmFiles(n.host, this.vmId).serialLog;
  }

  text(): string {
    try {
      return readFileSync(this.path, 'latin1');
    } catch {
      return '';
    }
  }

  /** Remember what the console holds now; `sinceMark` returns only what follows. */
  setMark(): this {
    this.mark = this.text();
    return this;
  }

  /** What was printed since `setMark` (all of it when the file was replaced by a new process's). */
  sinceMark(): string {
    const now = this.text();
    return now.startsWith(this.mark) ? now.slice(this.mark.length) : now;
  }

  /**
   * Keep a copy of the console while a move runs: the source's driver deletes the VM's files
   * once the VM has left. The copy holds the longest text seen (the file only grows until then).
   */
  record(): { stop(): string } {
    let kept = this.text();
    const timer = setInterval(() => {
      const now = this.text();
      if (now.length >= kept.length) kept = now;
    }, 100);
    return {
      stop: () => {
        clearInterval(timer);
        const now = this.text();
        if (now.length >= kept.length) kept = now;
        return kept.startsWith(this.mark) ? kept.slice(this.mark.length) : kept;
      },
    };
  }

  last(): Heartbeat | undefined {
    return parseConsole(this.text()).heartbeats.at(-1);
  }
}

export const vmId = (name: string, namespace = 'default'): string => `${namespace}_${name}`;

/** Wait until the guest on `node` prints a heartbeat above `above`. */
export async function waitHeartbeat(env: VmoveEnv, node: string, vmName: string, above = 0, timeoutMs = 120_000): Promise<Heartbeat> {
  const c = new GuestConsole(env, node, vmId(vmName));
  try {
    return await env.waitFor(`${vmName} to print a heartbeat above ${above} on ${node}`, async () => {
      const hb = c.last();
      return hb && hb.n > above ? hb : undefined;
    }, timeoutMs);
  } catch (err) {
    (err as Error).message += `\n${await guestFacts(env, c)}`;
    throw err;
  }
}

/** What can be seen of a guest that went quiet: its console, its QEMU's log and state, its agent's log. */
async function guestFacts(env: VmoveEnv, c: GuestConsole): Promise<string> {
  const text = c.text();
  const lines = [`console ${c.path}: ${text.length} bytes, ends with:`, JSON.stringify(text.slice(-400))];
  const n = env.fleet.nodes.get(c.node);
  if (n?.driver === 'qemu') {
    const files = vmFiles(n.host, c.vmId);
    lines.push(`qemu.log: ${JSON.stringify(readTail(files.qemuLog, 600))}`);
    const qmp = new QmpClient(files.qmpSocket, { connectTimeoutMs: 2000, commandTimeoutMs: 5000 });
    try {
      lines.push(`query-status: ${JSON.stringify(await qmp.execute('query-status'))}`);
      const hmp = (cmd: string) => qmp.execute<string>('human-monitor-command', { 'command-line': cmd });
      lines.push(`info registers (twice, 1 s apart): ${(await hmp('info registers')).match(/RIP=\S+/)?.[0]} ${(await sleep(1000), await hmp('info registers')).match(/RIP=\S+/)?.[0]}`);
      lines.push(`query-migrate: ${JSON.stringify(await qmp.execute('query-migrate'))}`);
    } catch (err) {
      lines.push(`QMP: ${(err as Error).message}`);
    } finally {
      qmp.close();
    }
  }
  lines.push(`agent-${c.node} log:`, env.logTail(`agent-${c.node}`, 30));
  return lines.join('\n');
}

const readTail = (file: string, bytes: number): string => {
  try {
    return readFileSync(file, 'latin1').slice(-bytes);
  } catch {
    return '(none)';
  }
};

/**
 * The heartbeats of one guest life read across hosts: the text each host printed, in order,
 * concatenated (a line cut by the switch-over joins up again). Throws unless the count goes on
 * by exactly one from line to line, i.e. the guest never restarted nor lost its memory.
 */
export function continuousHeartbeats(parts: string[]): Heartbeat[] {
  const all = parseConsole(parts.join('')).heartbeats;
  for (let i = 1; i < all.length; i++) {
    if (all[i]!.n !== all[i - 1]!.n + 1) {
      throw new Error(`heartbeat ${all[i - 1]!.n} is followed by ${all[i]!.n}: the guest did not run on continuously`);
    }
  }
  return all;
}

export const TERMINAL = ['Succeeded', 'Failed', 'Cancelled'];
/** The phases a move went through, each once, in order. */
export const phases = (mr: MoveRequest): string[] => [...new Set((mr.status?.history ?? []).map((h) => h.phase))];
export const historyText = (mr: MoveRequest): string[] => (mr.status?.history ?? []).map((h) => `${h.phase}${h.message ? `: ${h.message}` : ''}`);

/** History with each entry's start, in seconds after the first: for failure messages. */
export function story(mr: MoveRequest): string {
  const history = mr.status?.history ?? [];
  const t0 = Date.parse(history[0]?.startedAt ?? '');
  return history.map((h, i) => `+${((Date.parse(h.startedAt) - t0) / 1000).toFixed(1)}s ${historyText(mr)[i]}`).join('\n');
}

/**
 * vmove on real guests, and what the stack tests look at: VMs and moves applied with kubectl,
 * where the VM runs as its hosts say, and the guest's console on each host.
 */
export class RealStack {
  constructor(readonly env: VmoveEnv) {}

  static async start(driver: RealDriver, nodes?: EnvOptions['nodes'], more?: Pick<EnvOptions, 'controllerArgs'>): Promise<RealStack> {
    return new RealStack(await startRealEnv(driver, nodes, more));
  }

  stop(): Promise<void> {
    return this.env.stop();
  }

  guest(node: string, vm: string): GuestConsole {
    return new GuestConsole(this.env, node, vmId(vm));
  }

  /** Apply a VM pinned to `node` and wait until its guest prints its second heartbeat there. */
  async createVm(name: string, node: string, o: { storage: 'Local' | 'SharedFile'; kernelArgs: string; memory?: string }): Promise<void> {
    await this.env.apply(vmYaml(name, { node, storage: o.storage, kernelArgs: o.kernelArgs, memory: o.memory ?? '256Mi' }));
    await this.env.waitFor(`${name} running on ${node}`, async () => {
      const vm = await this.env.vm(name);
      return vm?.status?.phase === 'Running' && vm.status.nodeName === node;
    }, 120_000);
    await waitHeartbeat(this.env, node, name, 2);
  }

  /** Apply a MoveRequest and wait for its end. */
  async move(name: string, vm: string, spec: Record<string, unknown>, timeoutMs = 240_000): Promise<MoveRequest> {
    await this.env.apply(moveYaml(name, vm, spec));
    return this.env.waitForMove(name, TERMINAL, timeoutMs);
  }

  /**
   * Apply a move of `vm` from `from` to `to` and wait for its end, recording the guest's console
   * on both hosts from now on (the source's until the move ends: its driver deletes the file).
   */
  async watchedMove(name: string, vm: string, from: string, to: string, spec: Record<string, unknown>): Promise<{ mr: MoveRequest; onSource: string; target: GuestConsole }> {
    const target = this.guest(to, vm).setMark();
    const source = this.guest(from, vm).setMark();
    // One heartbeat on the source after the mark, so the record shows where the guest's count was.
    await this.env.waitFor(`a heartbeat of ${vm} on ${from}`, async () => parseConsole(source.sinceMark()).heartbeats.length > 0);
    const recording = source.record();
    let onSource = '';
    const mr = await this.move(name, vm, spec).finally(() => {
      onSource = recording.stop();
    });
    return { mr, onSource, target };
  }

  /** Wait until the move is in Migrating with bytes on the wire. */
  migrating(name: string): Promise<MoveRequest> {
    return this.env.waitFor(`${name} to be migrating`, async () => {
      const mr = await this.env.move(name);
      return mr?.status?.phase === 'Migrating' && (mr.status.progress?.memoryProcessedBytes ?? 0) > 0 ? mr : undefined;
    }, 120_000);
  }

  /**
   * The move ended in `phase`; otherwise fail with its story and the processes' last words.
   * VMOVE_E2E_STORY=1 prints every move's story.
   */
  ended(mr: MoveRequest, phase: string): void {
    if (process.env.VMOVE_E2E_STORY) console.log(`${mr.metadata.name}:\n${story(mr)}`);
    if (mr.status?.phase === phase) return;
    const procs = ['controller', ...[...this.env.fleet.agents.keys()].map((n) => `agent-${n}`)];
    const logs = procs.map((p) => `--- ${p}\n${this.env.logTail(p, 15)}`);
    throw new Error(`${mr.metadata.name} ended ${mr.status?.phase}, not ${phase}:\n${story(mr)}\n${logs.join('\n')}`);
  }

  /** The move went through exactly these phases (each once, in order); if not, the error tells its story. */
  wentThrough(mr: MoveRequest, expected: string[]): void {
    const got = phases(mr);
    if (got.join() !== expected.join()) throw new Error(`${mr.metadata.name} went through ${got.join(' → ')}, not ${expected.join(' → ')}:\n${story(mr)}`);
  }

  /** The VM runs on exactly `node`, as its hosts say, and its status says so too. */
  async runsOnlyOn(vm: string, node: string): Promise<void> {
    expect(await this.env.runningOn(vm)).toEqual([node]);
    await this.env.waitFor(`${vm} reported Running on ${node}`, async () => {
      const v = await this.env.vm(vm);
      return v?.status?.phase === 'Running' && v.status.nodeName === node && !v.status.moveRef;
    });
  }

  /** Whether `node`'s host holds the VM at all (running or not). */
  async holds(node: string, vm: string): Promise<boolean> {
    return ((await this.env.hostInventory()).get(node) ?? []).some((v) => v.id === vmId(vm));
  }

  /**
   * A live move as the guest saw it: what the source printed (from watchedMove), then what the
   * target printed, counts on without a gap; the target never booted; the guest got on with its
   * life there. Returns the heartbeats across both hosts.
   */
  async ranOnAcross(onSource: string, target: GuestConsole, vm: string): Promise<Heartbeat[]> {
    const first = await waitHeartbeat(this.env, target.node, vm, 0);
    await waitHeartbeat(this.env, target.node, vm, first.n + 1);
    const onTarget = target.sinceMark();
    expect(parseConsole(onTarget).boots).toEqual([]);
    const beats = continuousHeartbeats([onSource, onTarget]);
    const fromSource = parseConsole(onSource).heartbeats;
    expect(fromSource.length).toBeGreaterThan(0);
    expect(beats.length).toBeGreaterThan(fromSource.length);
    return beats;
  }

  /**
   * A cold boot on the target as the guest saw it: one boot that found the disk counter the
   * source's life left, then a heartbeat count from 1. Returns the target's console text.
   */
  async bootedWithDataOf(onSource: string, target: GuestConsole, vm: string): Promise<string> {
    await waitHeartbeat(this.env, target.node, vm, 1);
    const onTarget = target.sinceMark();
    const last = parseConsole(onSource).heartbeats.at(-1);
    expect(last).toBeDefined();
    const { boots, heartbeats } = parseConsole(onTarget);
    expect(boots).toHaveLength(1);
    // The guest writes the counter, then prints it; a power-off between the two leaves one more.
    expect([last!.disk, last!.disk + 1]).toContain(boots[0]);
    expect(heartbeats[0]).toMatchObject({ n: 1, disk: boots[0]! + 1 });
    return onTarget;
  }
}
