// Writes to one kind of object that keep its informer's cache current: every write is made under
// the resourceVersion the decision was based on (so a stale decision fails instead of overwriting
// newer state), its answer goes into the cache at once (so the next reconcile sees it before the
// watch event arrives), and a conflict refreshes the cache before it is rethrown (so the retried
// reconcile decides from the current object). Finalizers are one call each, as in kube-rs.
import { isConflict, type KubeApi } from './api';
import type { Informer, KubeObject } from './informer';

type Named = { metadata?: { name?: string; namespace?: string } };

export class CachedWriter<T extends KubeObject> {
  constructor(
    private readonly api: KubeApi,
    private readonly informer: Informer<T>,
    private readonly pathOf: (where: { namespace?: string; name: string; subresource?: 'status' }) => string,
  ) {}

  /** JSON merge patch; conditional on the object's resourceVersion unless `unconditional`. */
  patch(obj: T, body: { metadata?: Record<string, unknown>; [k: string]: unknown }, o: { subresource?: 'status'; unconditional?: boolean } = {}): Promise<T> {
    const metadata = o.unconditional ? body.metadata : { ...body.metadata, resourceVersion: obj.metadata?.resourceVersion };
    return this.write(obj, () => this.api.mergePatch<T>(this.path(obj, o.subresource), { ...body, ...(metadata ? { metadata } : {}) }));
  }

  /** Replace the whole status (fields it no longer has disappear), under the resourceVersion. */
  replaceStatus(obj: T, status: unknown): Promise<T> {
    return this.write(obj, () => this.api.replace<T>(this.path(obj, 'status'), { ...obj, status }));
  }

  async addFinalizer(obj: T, finalizer: string): Promise<T> {
    const list = obj.metadata?.finalizers ?? [];
    return list.includes(finalizer) ? obj : this.patch(obj, { metadata: { finalizers: [...list, finalizer] } });
  }

  /** Without its last finalizer a deleted object is gone; the cache forgets it then. */
  async removeFinalizer(obj: T, finalizer: string): Promise<T> {
    const list = obj.metadata?.finalizers ?? [];
    return list.includes(finalizer) ? this.patch(obj, { metadata: { finalizers: list.filter((f) => f !== finalizer) } }) : obj;
  }

  /** Put the server's current version of the object into the cache. */
  async refresh(obj: Named): Promise<T | undefined> {
    const fresh = await this.api.find<T>(this.path(obj));
    if (fresh) this.informer.writeThrough(fresh);
    return fresh;
  }

  private async write(obj: T, send: () => Promise<T>): Promise<T> {
    try {
      const updated = await send();
      this.informer.writeThrough(updated);
      return updated;
    } catch (e) {
      if (isConflict(e)) await this.refresh(obj);
      throw e;
    }
  }

  private path(obj: Named, subresource?: 'status'): string {
    return this.pathOf({ namespace: obj.metadata?.namespace, name: obj.metadata?.name ?? '', ...(subresource ? { subresource } : {}) });
  }
}
