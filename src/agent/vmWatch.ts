// A cluster-wide cache of VirtualMachines for the status reporter. client-node's informer
// stops for good on any watch error other than 410 Gone; this one starts it again with
// exponential backoff, so an API server restart does not leave the agent blind.
import { CustomObjectsApi, makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { GROUP, PLURALS, VERSION, type VirtualMachine } from '../api/types';
import { componentLogger } from '../log';
import { errorMessage } from './errors';

const log = componentLogger('agent-vm-watch');

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

export class VirtualMachineWatch {
  private readonly informer;
  private stopped = false;
  private retry?: NodeJS.Timeout;
  private backoffMs = BACKOFF_MIN_MS;
  private synced = false;

  constructor(kc: KubeConfig, onChange: (vm: VirtualMachine) => void) {
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
