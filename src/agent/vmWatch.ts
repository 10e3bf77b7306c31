// A cluster-wide cache of VirtualMachines for the status reporter. client-node's informer
// stops for good on any watch error other than 410 Gone; this one starts it again with
// exponential backoff, so an API server restart does not leave the agent blind.
// Agents that run in one process (demo, benchmark: 100 sim nodes) and share a KubeConfig
// share one watch and one cache: `VirtualMachineWatch.acquire`.
import { CustomObjectsApi, makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { GROUP, PLURALS, VERSION, type VirtualMachine } from '../api/types';
import { componentLogger } from '../log';
import { errorMessage } from './errors';

const log = componentLogger('agent-vm-watch');

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

type Listener = (vm: VirtualMachine) => void;

interface Shared {
  watch: VirtualMachineWatch;
  users: number;
  starting: Promise<void>;
}

const shared = new WeakMap<KubeConfig, Shared>();

/** One user's view of a (possibly shared) watch. */
export interface VirtualMachineWatchHandle {
  readonly isSynced: boolean;
  get(namespace: string, name: string): VirtualMachine | undefined;
  release(): Promise<void>;
}

export class VirtualMachineWatch {
  private readonly informer;
  private readonly listeners = new Set<Listener>();
  private stopped = false;
  private retry?: NodeJS.Timeout;
  private backoffMs = BACKOFF_MIN_MS;
  private synced = false;

  /** The watch of `kc` (started once for all users); `onChange` hears every add and update. */
  static async acquire(kc: KubeConfig, onChange: Listener): Promise<VirtualMachineWatchHandle> {
    let entry = shared.get(kc);
    if (!entry) {
      const watch = new VirtualMachineWatch(kc);
      entry = { watch, users: 0, starting: watch.start() };
      shared.set(kc, entry);
    }
    const e = entry;
    e.users += 1;
    e.watch.listeners.add(onChange);
    await e.starting;
    let released = false;
    return {
      get isSynced() {
        return e.watch.isSynced;
      },
      get: (namespace, name) => e.watch.get(namespace, name),
      release: async () => {
        if (released) return;
        released = true;
        e.watch.listeners.delete(onChange);
        e.users -= 1;
        if (e.users === 0) {
          shared.delete(kc);
          await e.watch.stop();
        }
      },
    };
  }

  private constructor(kc: KubeConfig) {
    const onChange = (vm: VirtualMachine) => {
      for (const l of this.listeners) l(vm);
    };
    const api = kc.makeApiClient(CustomObjectsApi);
    const path = `/apis/${GROUP}/${VERSION}/${PLURALS.VirtualMachine}`;
    // Our API types spell metadata as JSON has it; client-node's as its classes do.
    this.informer = makeInformer<KubernetesObject>(
      kc,
      path,
      async () => {
        const list = (await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURALS.VirtualMachine })) as KubernetesListObject<KubernetesObject>;
        this.synced = true;
        this.backoffMs = BACKOFF_MIN_MS;
        return list;
      },
    );
    this.informer.on('add', (o) => onChange(o as unknown as VirtualMachine));
    this.informer.on('update', (o) => onChange(o as unknown as VirtualMachine));
    this.informer.on('error', (err: unknown) => this.restartLater(err));
  }

  /** True once a first list arrived (before that, `get` knows nothing). */
  get isSynced(): boolean {
    return this.synced;
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.informer.start().catch((err: unknown) => this.restartLater(err));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.informer.stop();
  }

  get(namespace: string, name: string): VirtualMachine | undefined {
    return this.informer.get(name, namespace) as unknown as VirtualMachine | undefined;
  }

  private restartLater(err: unknown): void {
    if (this.stopped) return;
    log.warn({ err: errorMessage(err), retryInMs: this.backoffMs }, 'VirtualMachine watch failed; restarting');
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      if (!this.stopped) void this.informer.start().catch((e: unknown) => this.restartLater(e));
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
  }
}
