// Waits for agent operations that are still running, off the reconcile workers. A reconcile
// sends its step and waits only briefly (INLINE_WAIT_MS); when the step is still running it asks
// this to long-poll the agent and wake its key once the operation ended or the wait ran out.
// A worker held in a one-second long-poll is a worker no other move can use: with 50 moves in
// flight and 16 workers, moves waited for workers rather than for their hosts.
// Only a trigger: nothing here is state. A wake lost to a restart is made up by the reconcile's
// own requeue, and the next reconcile re-sends its idempotent step.
import type { AgentTarget } from '../agent/client';
import type { InformerHandlers } from '../kube/informer';
import type { Watchable } from '../kube/controller';
import type { AgentOps } from './agentOps';

/** How long a reconcile itself waits for its step (most steps on a fast host end within it). */
export const INLINE_WAIT_MS = 25;

export class OperationWaiter implements Watchable<string> {
  private readonly handlers: InformerHandlers<string>[] = [];
  /** Operations waited on now, by opId: one long-poll each, however often their move looks. */
  private readonly waiting = new Set<string>();
  private stopped = false;

  constructor(
    private readonly agents: Pick<AgentOps, 'getOperation'>,
    private readonly waitMs: number,
  ) {}

  on(h: InformerHandlers<string>): this {
    this.handlers.push(h);
    return this;
  }

  /** Wake `key` once `opId` on `target` ended, or after the long-poll's wait. */
  wake(key: string, target: AgentTarget, opId: string): void {
    if (this.stopped || this.waiting.has(opId)) return;
    this.waiting.add(opId);
    void this.agents
      .getOperation(target, opId, { waitMs: this.waitMs })
      // An agent that does not answer: the reconcile's own requeue looks again.
      .catch(() => undefined)
      .finally(() => {
        this.waiting.delete(opId);
        if (!this.stopped) for (const h of this.handlers) h.onChange?.(key, undefined);
      });
  }

  /** Operations being waited on (for tests and metrics). */
  get size(): number {
    return this.waiting.size;
  }

  stop(): void {
    this.stopped = true;
  }
}
