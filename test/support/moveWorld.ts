// A small model of the hosts a move touches and the one VM it moves: it applies the *effects*
// of agent steps, so tests can say where the VM runs after any sequence of step results.
// Only what a move can observe or break is modelled: which host runs or defines the VM, with
// which resources, whether its in-memory state is still current, and what its disks hold.
import type { OperationRequest } from '../../src/protocol/operations';
import type { Resources, Role, Step } from '../../src/machines';

/**
 * running: the guest runs. stopped: defined, not running.
 * incoming: a live-migration target waiting for the state (paused, empty).
 * received: a live-migration target holding the state (paused, not yet running).
 * migrated: a live-migration source that handed its state over (paused).
 */
export type Power = 'running' | 'stopped' | 'incoming' | 'received' | 'migrated';

/** data: the VM's own data. image: fresh from its source image (data lost). blank: empty disks. torn: copied while the guest wrote. */
export type DiskContent = 'data' | 'image' | 'blank' | 'torn';

export interface HostedVm {
  power: Power;
  /** Resources of the definition: what the next boot gets. */
  defined: Resources;
  /** Resources of the instance in memory (running, received, migrated). */
  live?: Resources;
  /** The guest epoch its in-memory state was captured at (received, migrated). */
  stateEpoch?: number;
}

export interface Host {
  name: string;
  agent: 'up' | 'lost';
  /** Powered off by fencing: whatever it had, nothing runs there. */
  fenced: boolean;
  vm?: HostedVm;
  /** The VM's Local disks on this host. */
  disks?: DiskContent;
}

export interface World {
  storage: 'shared' | 'local';
  /** The VM's disks on shared storage (every host sees them). */
  sharedDisks?: DiskContent;
  hosts: Record<string, Host>;
  /** Bumped whenever an instance of the guest starts running: state captured before is stale. */
  epoch: number;
  /** Harm done that no end state can show (e.g. stale memory resumed); must stay empty. */
  harm: string[];
}

export interface WorldSetup {
  source: string;
  /** Omit for moves that stay on one host. */
  target?: string;
  storage: 'shared' | 'local';
  vmRunning: boolean;
  resources: Resources;
  /** The source host is dead and fenced before the move starts (rebuild of a dead host's VMs). */
  sourceFenced?: boolean;
}

export function newWorld(s: WorldSetup): World {
  const source: Host = {
    name: s.source,
    agent: s.sourceFenced ? 'lost' : 'up',
    fenced: !!s.sourceFenced,
    vm: s.vmRunning
      ? { power: 'running', defined: s.resources, live: s.resources }
      : { power: 'stopped', defined: s.resources },
    ...(s.storage === 'local' ? { disks: 'data' as const } : {}),
  };
  const hosts: Record<string, Host> = { [s.source]: source };
  if (s.target && s.target !== s.source) hosts[s.target] = { name: s.target, agent: 'up', fenced: false };
  return { storage: s.storage, ...(s.storage === 'shared' ? { sharedDisks: 'data' as const } : {}), hosts, epoch: 0, harm: [] };
}

const clone = (w: World): World => structuredClone(w);

export type StepOutcome = { ok: true; world: World } | { ok: false; reason: string };

/** Where a step with `role` runs. */
export type NodeOf = (role: Role) => string;

const refuse = (reason: string): StepOutcome => ({ ok: false, reason });

/** The VM's disks as seen from `host` (its Local disks, or the shared ones). */
export const disksOn = (w: World, host: string): DiskContent | undefined =>
  w.storage === 'shared' ? w.sharedDisks : w.hosts[host]?.disks;

/**
 * Apply a step that succeeded, or say why the agent could not have succeeded (then the only
 * honest answer to the machine is STEP_FAILED). `resources` is what the step's VM spec carries.
 */
export function applyStep(world: World, host: string, request: Step['request'], resources: Resources): StepOutcome {
  const w = clone(world);
  const h = w.hosts[host];
  if (!h) return refuse(`no host ${host}`);
  if (h.agent === 'lost') return refuse(`${host}'s agent is lost: nobody answers`);
  const vm = h.vm;
  const startFromDisk = (v: HostedVm): StepOutcome => {
    const disks = disksOn(w, host);
    if (!disks) return refuse(`${host} has no disks to boot from`);
    Object.assign(v, { power: 'running', live: v.defined });
    delete v.stateEpoch;
    w.epoch += 1;
    return { ok: true, world: w };
  };
  const req = request as OperationRequest;
  switch (req.kind) {
    case 'prepareIncoming': {
      if (vm && vm.power !== 'incoming') return refuse(`${host} already holds the VM (${vm.power})`);
      h.vm = { power: 'incoming', defined: resources };
      if (req.blockMigration) h.disks = h.disks ?? 'blank';
      return { ok: true, world: w };
    }
    case 'migrate': {
      const target = Object.values(w.hosts).find((o) => o.name !== host && o.vm?.power === 'incoming');
      if (!vm || vm.power !== 'running') return refuse(`the VM does not run on ${host}`);
      if (!target || target.agent === 'lost') return refuse('no target waits for the VM');
      Object.assign(vm, { power: 'migrated', stateEpoch: w.epoch });
      target.vm = { power: 'received', defined: target.vm!.defined, live: vm.live!, stateEpoch: w.epoch };
      if (req.blockMigration) target.disks = h.disks;
      return { ok: true, world: w };
    }
    case 'abortMigration':
      // An unfinished migration leaves the source running; a finished one cannot be aborted.
      return { ok: true, world: w };
    case 'completeIncoming': {
      if (!vm || vm.power !== 'received') return refuse(`${host} holds no migrated state`);
      if (vm.power === 'received') {
        Object.assign(vm, { power: 'running' });
        delete vm.stateEpoch;
        w.epoch += 1;
      }
      return { ok: true, world: w };
    }
    case 'resumeSource': {
      if (!vm) return refuse(`${host} holds no VM`);
      if (vm.power === 'running') return { ok: true, world: w };
      if (vm.power !== 'migrated') return refuse(`${host}'s VM is ${vm.power}: nothing to resume`);
      // Stale memory resumed against disks another instance wrote since: on shared storage. On
      // local disks the other instance wrote its own copies; the source's memory and disks are
      // one state still (what the other wrote is lost, as it would be by a boot from disk).
      if ((vm.stateEpoch ?? 0) < w.epoch && w.storage === 'shared') w.harm.push(`resumed stale memory on ${host}: another instance ran on its shared disks since it was paused`);
      Object.assign(vm, { power: 'running' });
      delete vm.stateEpoch;
      w.epoch += 1;
      return { ok: true, world: w };
    }
    case 'startVm': {
      if (!vm) return refuse(`${host} has no VM defined`);
      if (vm.power === 'running') return { ok: true, world: w };
      if (vm.power === 'incoming') return refuse(`${host} waits for an incoming migration`);
      return startFromDisk(vm);
    }
    case 'stopVm': {
      if (!vm) return refuse(`${host} has no VM defined`);
      if (vm.power === 'incoming') return refuse(`${host} waits for an incoming migration`);
      h.vm = { power: 'stopped', defined: vm.defined };
      return { ok: true, world: w };
    }
    case 'ensureVm': {
      if (req.disks === 'fresh') {
        if (w.storage === 'shared') w.sharedDisks = 'image';
        else h.disks = 'image';
      } else if (!disksOn(w, host)) {
        // The agent creates missing disks: blank ones.
        if (w.storage === 'shared') w.sharedDisks = 'blank';
        else h.disks = 'blank';
      }
      if (vm && vm.power !== 'stopped' && vm.power !== 'running') return refuse(`${host}'s VM is ${vm.power}`);
      h.vm = vm ? { ...vm, defined: resources } : { power: 'stopped', defined: resources };
      return req.start ? startFromDisk(h.vm) : { ok: true, world: w };
    }
    case 'copyDisks': {
      const from = Object.values(w.hosts).find((o) => o.name !== host && o.disks);
      if (!from || from.agent === 'lost') return refuse('no reachable host has the disks');
      h.disks = from.vm?.power === 'running' && !from.fenced ? 'torn' : from.disks;
      return { ok: true, world: w };
    }
    case 'deleteVm': {
      delete h.vm;
      if (req.deleteLocalDisks) delete h.disks;
      if (req.deleteSharedDisks) delete w.sharedDisks;
      return { ok: true, world: w };
    }
    case 'hotplug': {
      if (!vm || vm.power !== 'running') return refuse(`the VM does not run on ${host}`);
      const to = { cpu: req.cpu, memoryBytes: req.memoryBytes };
      Object.assign(vm, { live: to, defined: to });
      return { ok: true, world: w };
    }
    case 'verify': {
      if (!vm) return refuse(`${host} has no VM`);
      if (h.fenced) return refuse(`${host} is fenced`);
      const want = req.expectRunning ? 'running' : 'stopped';
      if (vm.power !== want) return refuse(`the VM is ${vm.power} on ${host}, expected ${want}`);
      const has = req.expectRunning ? vm.live! : vm.defined;
      if (has.cpu !== resources.cpu || has.memoryBytes !== resources.memoryBytes) return refuse(`the VM on ${host} has other resources`);
      if (!disksOn(w, host)) return refuse(`the VM on ${host} has no disks`);
      return { ok: true, world: w };
    }
  }
}

/** The host's agent is gone; the host keeps whatever it had. */
export function loseAgent(world: World, host: string): World {
  const w = clone(world);
  w.hosts[host]!.agent = 'lost';
  return w;
}

/** Hosts where an instance of the guest runs (a fenced host runs nothing). */
export const runningOn = (w: World): string[] =>
  Object.values(w.hosts)
    .filter((h) => !h.fenced && h.vm?.power === 'running')
    .map((h) => h.name);

/** Hosts that hold a definition of the VM (in any power state). */
export const definedOn = (w: World): string[] =>
  Object.values(w.hosts)
    .filter((h) => !h.fenced && h.vm)
    .map((h) => h.name);

/** One line per host, for failure messages. */
export function describeWorld(w: World): string {
  const hosts = Object.values(w.hosts).map((h) => {
    const vm = h.vm ? `${h.vm.power} def=${h.vm.defined.cpu}/${h.vm.defined.memoryBytes}${h.vm.live ? ` live=${h.vm.live.cpu}/${h.vm.live.memoryBytes}` : ''}` : 'no VM';
    return `${h.name}${h.agent === 'lost' ? ' (agent lost)' : ''}${h.fenced ? ' (fenced)' : ''}: ${vm}${h.disks ? `, disks ${h.disks}` : ''}`;
  });
  return [...hosts, ...(w.storage === 'shared' ? [`shared disks: ${w.sharedDisks ?? 'none'}`] : []), ...w.harm.map((x) => `harm: ${x}`)].join('; ');
}
