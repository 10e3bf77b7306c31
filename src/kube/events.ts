// Kubernetes Events for what users should see (`kubectl describe`, `kubectl get events`).
// Repeats of the same reason and message on the same object are folded into one Event with a
// count, as kubelet does. Recording never fails the caller: an Event is best effort.
import { randomBytes } from 'node:crypto';
import { componentLogger } from '../log';
import type { KubeApi } from './api';
import { eventPath } from './paths';
import { metaTime } from './time';

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export type EventType = 'Normal' | 'Warning';

const MAX_REMEMBERED = 4096;
/** Cluster-scoped objects' Events live here, as Nodes' do. */
const CLUSTER_EVENT_NAMESPACE = 'default';

export class EventRecorder {
  private readonly seen = new Map<string, { name: string; namespace: string; count: number }>();
  private readonly log = componentLogger('events');

  constructor(
    private readonly api: KubeApi,
    private readonly component: string,
    private readonly instance: string,
  ) {}

  record(obj: InvolvedObject, type: EventType, reason: string, message: string): void {
    void this.write(obj, type, reason, message.slice(0, 1024)).catch((err: unknown) =>
      this.log.debug({ err: String(err), reason }, 'could not record event'),
    );
  }

  private async write(obj: InvolvedObject, type: EventType, reason: string, message: string): Promise<void> {
    const namespace = obj.metadata.namespace ?? CLUSTER_EVENT_NAMESPACE;
    const key = `${obj.metadata.uid}|${type}|${reason}|${message}`;
    const now = new Date();
    const prior = this.seen.get(key);
    if (prior) {
      prior.count++;
      this.seen.delete(key);
      this.seen.set(key, prior);
      await this.api.mergePatch(eventPath({ namespace: prior.namespace, name: prior.name }), { count: prior.count, lastTimestamp: metaTime(now) });
      return;
    }
    const name = `${obj.metadata.name}.${randomBytes(8).toString('hex')}`;
    await this.api.create(eventPath({ namespace }), {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.metadata.name,
        namespace: obj.metadata.namespace,
        uid: obj.metadata.uid,
        resourceVersion: obj.metadata.resourceVersion,
      },
      type,
      reason,
      message,
      count: 1,
      firstTimestamp: metaTime(now),
      lastTimestamp: metaTime(now),
      source: { component: this.component },
      reportingComponent: this.component,
      reportingInstance: this.instance,
    });
    this.seen.set(key, { name, namespace, count: 1 });
    if (this.seen.size > MAX_REMEMBERED) this.seen.delete(this.seen.keys().next().value!);
  }
}
