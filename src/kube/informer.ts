// List-then-watch cache of one resource, which never gives up: a watch that ends is resumed from
// the last resourceVersion, a 410 Gone relists, and any other error relists after a backoff
// (client-node's own informer stops on such errors and never resyncs). Handlers get each change;
// `onResync` fires for every object periodically so reconcilers look again even without changes.
import { componentLogger } from '../log';
import { isNotFound, type KubeApi, type WatchEvent } from './api';
import { keyOf } from './paths';

interface Listed<T> {
  metadata: { resourceVersion: string };
  items: T[];
}

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string; deletionTimestamp?: string; finalizers?: string[] };
}

export interface InformerHandlers<T> {
  onChange?: (obj: T, old: T | undefined) => void;
  onDelete?: (obj: T) => void;
}

/** What arrived from the server: a list's body, a piece of the watch stream, or one watch event. */
export type Received = { via: 'list' | 'watch'; bytes: number; events: number };

export interface InformerOptions {
  labelSelector?: string;
  /** e.g. `status.nodeName=node-1` (a CRD's selectableFields). */
  fieldSelector?: string;
  resyncMs?: number;
  name?: string;
  onRestart?: () => void;
  /** Told what arrives (bytes of lists and of the watch stream, watch events but bookmarks). */
  onReceived?: (r: Received) => void;
}

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
const WATCH_TIMEOUT_S = 300;

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  /**
   * The last version of each object the server delivered (list/watch). Handlers fire once per
   * delivered version — also for versions this process wrote through first — with the previously
   * delivered one as `old`, so "did the phase change" checks see our own writes too.
   */
  private readonly delivered = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private abort = new AbortController();
  private stopped = false;
  private resourceVersion = '';
  private synced!: () => void;
  readonly hasSynced: Promise<void> = new Promise((r) => (this.synced = r));
  private resyncTimer?: NodeJS.Timeout;
  private readonly log;

  constructor(
    private readonly api: KubeApi,
    private readonly path: string,
    private readonly opts: InformerOptions = {},
  ) {
    this.log = componentLogger('informer', { resource: opts.name ?? path });
  }

  on(h: InformerHandlers<T>): this {
    this.handlers.push(h);
    return this;
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  /**
   * Put an object we just wrote into the cache, so the next reconcile sees our own write even
   * before its watch event arrives. Older versions never replace newer ones.
   */
  writeThrough(obj: T): void {
    dropManagedFields(obj);
    const key = keyOf(obj);
    // Its last finalizer removed, the object is gone from the server, and its DELETED event may
    // already have passed: caching it would leave a ghost that no watch event ever removes.
    if (obj.metadata?.deletionTimestamp && !obj.metadata.finalizers?.length) {
      this.cache.delete(key);
      return;
    }
    const old = this.cache.get(key);
    if (old && Number(old.metadata?.resourceVersion ?? 0) > Number(obj.metadata?.resourceVersion ?? 0)) return;
    this.cache.set(key, obj);
  }

  start(): void {
    void this.run();
    if (this.opts.resyncMs) {
      this.resyncTimer = setInterval(() => this.resync(), this.opts.resyncMs);
      this.resyncTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
  }

  private resync(): void {
    for (const obj of this.cache.values()) for (const h of this.handlers) h.onChange?.(obj, obj);
  }

  private async run(): Promise<void> {
    let backoff = MIN_BACKOFF_MS;
    let needList = true;
    let first = true;
    while (!this.stopped) {
      // Every pass after the first resumes a watch that ended: closed by the server, failed, or gone (410).
      if (!first) this.opts.onRestart?.();
      first = false;
      try {
        if (needList) {
          await this.relist();
          needList = false;
          this.synced();
        }
        const gone = await this.watchOnce();
        if (gone) needList = true;
        backoff = MIN_BACKOFF_MS;
      } catch (err) {
        if (this.stopped) break;
        // The first failures are routine (a CRD's storage still initializing, a watch cut short).
        const level = backoff >= 4 * MIN_BACKOFF_MS ? 'warn' : 'debug';
        this.log[level]({ err: String(err), retryInMs: backoff }, 'list/watch failed; retrying');
        needList = true;
        await sleep(backoff);
        backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
      }
    }
  }

  private async relist(): Promise<void> {
    let list: Listed<T>;
    try {
      const onReceived = this.opts.onReceived;
      list = await this.api.request<Listed<T>>('GET', this.path, {
        query: { labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector },
        ...(onReceived ? { onBytes: (bytes: number) => onReceived({ via: 'list', bytes, events: 0 }) } : {}),
      });
    } catch (e) {
      // A CRD not installed yet behaves like an empty list until it is.
      if (!isNotFound(e)) throw e;
      throw new Error(`resource ${this.path} not found (CRD not installed?)`);
    }
    const seen = new Set<string>();
    for (const item of list.items) {
      const key = keyOf(item);
      seen.add(key);
      this.apply(item);
    }
    for (const [key, obj] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.delivered.delete(key);
        for (const h of this.handlers) h.onDelete?.(obj);
      }
    }
    this.resourceVersion = list.metadata.resourceVersion;
  }

  /** Answers true when the server says our resourceVersion is too old (410 Gone). */
  private async watchOnce(): Promise<boolean> {
    this.abort = new AbortController();
    let gone = false;
    const onReceived = this.opts.onReceived;
    await this.api.watch<T>(
      this.path,
      { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT_S, labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector },
      (e: WatchEvent<T>) => {
        if (e.type === 'ERROR') {
          const status = e.object as unknown as { code?: number; message?: string };
          if (status.code === 410) gone = true;
          else this.log.warn({ status }, 'watch error event');
          this.abort.abort();
          return;
        }
        const rv = e.object.metadata?.resourceVersion;
        if (rv) this.resourceVersion = rv;
        if (e.type === 'BOOKMARK') return;
        onReceived?.({ via: 'watch', bytes: 0, events: 1 });
        if (e.type === 'DELETED') {
          const key = keyOf(e.object);
          this.cache.delete(key);
          this.delivered.delete(key);
          for (const h of this.handlers) h.onDelete?.(e.object);
        } else this.apply(e.object);
      },
      this.abort.signal,
      onReceived ? (bytes) => onReceived({ via: 'watch', bytes, events: 0 }) : undefined,
    );
    return gone;
  }

  private apply(obj: T): void {
    dropManagedFields(obj);
    const key = keyOf(obj);
    const cached = this.cache.get(key);
    if (cached && Number(cached.metadata?.resourceVersion ?? 0) > Number(obj.metadata?.resourceVersion ?? 0)) return;
    this.cache.set(key, obj);
    const old = this.delivered.get(key);
    if (old?.metadata?.resourceVersion === obj.metadata?.resourceVersion) return;
    this.delivered.set(key, obj);
    for (const h of this.handlers) h.onChange?.(obj, old);
  }
}

/**
 * Server-side apply's field ownership is no reconciler's business, and on objects several managers
 * write (a VM's status by the controller and two agents) it is a third of the object or more: the
 * cache would hold it for every object, as controller-runtime's default transform also decides.
 */
function dropManagedFields(obj: KubeObject): void {
  const meta = obj.metadata as { managedFields?: unknown } | undefined;
  if (meta?.managedFields) delete meta.managedFields;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());
