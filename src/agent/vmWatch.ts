// The agent's view of VirtualMachines: a list-then-watch cache (kube/informer.ts, which restarts
// itself after any error) of only the VMs placed on this node. Two watches with field selectors
// on the CRD's selectableFields, disjoint so no change arrives twice:
//   status.nodeName=<node>                           — VMs this node's agent reported running here
//   status.nodeName=,status.scheduledNode=<node>     — VMs placed here that no agent reported yet
// A VM that leaves them (moved away, placed elsewhere) arrives as DELETED and leaves the cache.
// What the agent needs of VMs outside them — the target of a move in flight, a left-over copy of
// a VM that runs elsewhere now — it fetches by name (`fetch`), only for copies it holds.
//
// `watchAll` (agent flag --watch-all-vms, for comparison only: the benchmark's "before") watches
// every VM in the cluster as agents did before; agents in one process (demo, benchmark) that
// share a KubeConfig then share that one watch and cache: `VirtualMachineWatch.acquire`.
import type { KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURALS, VERSION, type VirtualMachine } from '../api/types';
import { KubeApi } from '../kube/api';
import { Informer, type Received } from '../kube/informer';
import { vmovePath } from '../kube/paths';

export interface VmViewEvents {
  /** Every add, update and removal the view's watches deliver. */
  onChange: (vm: VirtualMachine) => void;
  /** What arrived for this view (lists, watch streams and events, fetches by name). */
  onReceived?: (r: { via: Received['via'] | 'get'; bytes: number; events: number }) => void;
}

export interface VmViewOptions {
  node: string;
  /** Watch every VM of the cluster (the behaviour before per-node selectors; comparison only). */
  watchAll?: boolean;
}

/** One user's view of a (possibly shared) watch. */
export interface VirtualMachineWatchHandle {
  readonly isSynced: boolean;
  /** True when the view holds every VM there is (watchAll): one it lacks does not exist. */
  readonly complete: boolean;
  /** The VM as the watches last delivered it; undefined when it is not in the view. */
  get(namespace: string, name: string): VirtualMachine | undefined;
  /** A GET of one VM (undefined: it does not exist), counted as received. */
  fetch(namespace: string, name: string): Promise<VirtualMachine | undefined>;
  release(): Promise<void>;
}

/** The field selectors of the VMs placed on `node` (disjoint). */
export const nodeSelectors = (node: string): string[] => [`status.nodeName=${node}`, `status.nodeName=,status.scheduledNode=${node}`];

interface Shared {
  watch: VirtualMachineWatch;
  users: number;
  starting: Promise<void>;
}

const shared = new WeakMap<KubeConfig, Map<string, Shared>>();
const rvOf = (vm: VirtualMachine | undefined): number => Number(vm?.metadata.resourceVersion ?? -1);

export class VirtualMachineWatch {
  private readonly informers: Informer<VirtualMachine>[] = [];
  private readonly users = new Set<VmViewEvents>();
  private synced = false;

  /** The view `o` asks for, over `kc` (started once for all users of the same view). */
  static async acquire(kc: KubeConfig, o: VmViewOptions, events: VmViewEvents): Promise<VirtualMachineWatchHandle> {
    const key = o.watchAll ? '*' : `node:${o.node}`;
    let views = shared.get(kc);
    if (!views) shared.set(kc, (views = new Map()));
    let entry = views.get(key);
    if (!entry) {
      const watch = new VirtualMachineWatch(KubeApi.fromKubeConfig(kc), o);
      entry = { watch, users: 0, starting: watch.start() };
      views.set(key, entry);
    }
    const e = entry;
    const v = views;
    e.users += 1;
    e.watch.users.add(events);
    await e.starting;
    let released = false;
    return {
      get isSynced() {
        return e.watch.synced;
      },
      complete: !!o.watchAll,
      get: (namespace, name) => e.watch.get(namespace, name),
      fetch: (namespace, name) => e.watch.fetch(namespace, name, events),
      release: async () => {
        if (released) return;
        released = true;
        e.watch.users.delete(events);
        e.users -= 1;
        if (e.users === 0) {
          v.delete(key);
          await e.watch.stop();
        }
      },
    };
  }

  private api?: KubeApi;

  private constructor(
    private readonly apiReady: Promise<KubeApi>,
    private readonly o: VmViewOptions,
  ) {}

  private async start(): Promise<void> {
    const api = (this.api = await this.apiReady);
    const path = `/apis/${GROUP}/${VERSION}/${PLURALS.VirtualMachine}`;
    const selectors = this.o.watchAll ? [undefined] : nodeSelectors(this.o.node);
    for (const fieldSelector of selectors) {
      const informer = new Informer<VirtualMachine>(api, path, {
        name: `virtualmachines${fieldSelector ? ` (${fieldSelector})` : ''}`,
        ...(fieldSelector ? { fieldSelector } : {}),
        onReceived: (r) => {
          for (const u of this.users) u.onReceived?.(r);
        },
      });
      const changed = (vm: VirtualMachine) => {
        for (const u of this.users) u.onChange(vm);
      };
      informer.on({ onChange: changed, onDelete: changed });
      this.informers.push(informer);
      informer.start();
    }
    // Not awaited: an agent starts (and serves) while the API server or the CRD is not there yet.
    void Promise.all(this.informers.map((i) => i.hasSynced)).then(() => (this.synced = true));
  }

  private async stop(): Promise<void> {
    await this.apiReady.catch(() => undefined);
    for (const i of this.informers) i.stop();
    this.api?.close();
  }

  private get(namespace: string, name: string): VirtualMachine | undefined {
    let best: VirtualMachine | undefined;
    for (const i of this.informers) {
      const vm = i.get(`${namespace}/${name}`);
      if (vm && rvOf(vm) > rvOf(best)) best = vm;
    }
    return best;
  }

  private async fetch(namespace: string, name: string, user: VmViewEvents): Promise<VirtualMachine | undefined> {
    const api = this.api ?? (await this.apiReady);
    return api.find<VirtualMachine>(vmovePath(PLURALS.VirtualMachine, { namespace, name }), {
      onBytes: (bytes) => user.onReceived?.({ via: 'get', bytes, events: 0 }),
    });
  }
}
