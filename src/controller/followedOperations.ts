// Agent operations followed beside the reconciles instead of inside them. A reconcile sends its
// step with no wait and gets the operation's status at once; while the operation runs, one long
// poll per operation (GET ?waitMs) waits for it here, and its answer wakes the reconcile's key
// through an ordinary controller watch. The next look takes that answer instead of asking again.
// So a worker never sits in an agent's long poll: with 50 moves in flight, the workers stay free
// for the looks that have something to do, and an operation's end is still seen within one poll.
import type { AgentTarget } from '../agent/client';
import type { InformerHandlers } from '../kube/informer';
import type { Watch, Watchable } from '../kube/controller';
import type { Logger } from '../log';
import type { OperationRequest, OperationStatus } from '../protocol/operations';
import type { AgentOps } from './agentOps';

/** A failed long poll (agent unreachable, restarting) wakes its key after this long, not at once. */
export const FAILED_WAIT_RETRY_MS = 500;
/** Answers nobody took (the request ended or went) are forgotten after this long. */
const UNTAKEN_ANSWER_TTL_MS = 60_000;
/**
 * Long polls open at once; the rest wait their turn (in order). Each holds a connection to an
 * agent: 1,000 VMs created at once would otherwise hold 1,000 (+33 MiB of controller RSS in the
 * scale benchmark), where the reconcile workers used to bound them.
 */
export const MAX_OPEN_FOLLOWS = 64;

interface Brought {
  status: OperationStatus;
  seenAt: number;
}

export interface FollowedCall {
  /** The key woken when the followed operation ends or the wait does. */
  key: string;
  target: AgentTarget;
  opId: string;
  /** The operation's body, made only when it is sent. */
  request: () => Promise<OperationRequest> | OperationRequest;
}

export class FollowedOperations implements Watchable<string> {
  private readonly handlers: InformerHandlers<string>[] = [];
  private readonly brought = new Map<string, Brought>();
  private readonly following = new Set<string>();
  /** Operations to follow once a long poll ends, by opId (oldest first). */
  private readonly queued = new Map<string, FollowedCall>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly agents: AgentOps,
    /** How long one long poll waits at the agent (the controller's agentWaitMs). */
    private readonly waitMs: number,
    private readonly log: Logger,
    /** Long polls open at once (MAX_OPEN_FOLLOWS). */
    private readonly maxOpen = MAX_OPEN_FOLLOWS,
  ) {}

  on(h: InformerHandlers<string>): this {
    this.handlers.push(h);
    return this;
  }

  /**
   * The operation's status: what a follow brought, when it is fresh (a running answer older than
   * one wait is not trusted; an ended operation stays ended), or else what the agent answers to
   * the step sent again (idempotent by opId). A running operation is then followed. Throws what
   * the agent call throws (the caller sorts it with askAgent).
   */
  async call(c: FollowedCall): Promise<OperationStatus> {
    const answer = this.take(c.opId) ?? (await this.agents.putOperation(c.target, c.opId, await c.request(), { waitMs: 0 }));
    if (answer.state === 'Running') this.follow(c);
    return answer;
  }

  /** Stop waking keys (the controller stops); polls in flight end on their own. */
  stop(): void {
    this.stopped = true;
    this.queued.clear();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.brought.clear();
  }

  private take(opId: string): OperationStatus | undefined {
    const b = this.brought.get(opId);
    if (!b) return undefined;
    this.brought.delete(opId);
    const fresh = b.status.state !== 'Running' || Date.now() - b.seenAt <= this.waitMs;
    return fresh ? b.status : undefined;
  }

  /** One long poll per operation; its answer (or its failure, a moment later) wakes the key. */
  private follow(c: FollowedCall): void {
    if (this.stopped || this.following.has(c.opId) || this.waitMs <= 0) return;
    if (this.following.size >= this.maxOpen) {
      this.queued.set(c.opId, c);
      return;
    }
    this.following.add(c.opId);
    const ended = () => {
      this.following.delete(c.opId);
      const next = this.queued.entries().next().value;
      if (next) {
        this.queued.delete(next[0]);
        this.follow(next[1]);
      }
    };
    void this.agents.getOperation(c.target, c.opId, { waitMs: this.waitMs }).then(
      (status) => {
        ended();
        if (status) this.keep(c.opId, status);
        this.wake(c.key, status ? 0 : FAILED_WAIT_RETRY_MS);
      },
      (err: unknown) => {
        ended();
        this.log.debug({ opId: c.opId, agent: typeof c.target === 'string' ? c.target : c.target.node, err: err instanceof Error ? err.message : String(err) }, 'following an operation failed; the next look asks again');
        this.wake(c.key, FAILED_WAIT_RETRY_MS);
      },
    );
  }

  private keep(opId: string, status: OperationStatus): void {
    const now = Date.now();
    for (const [id, b] of this.brought) if (now - b.seenAt > UNTAKEN_ANSWER_TTL_MS) this.brought.delete(id);
    this.brought.set(opId, { status, seenAt: now });
  }

  private wake(key: string, afterMs: number): void {
    if (this.stopped) return;
    const fire = () => {
      if (!this.stopped) for (const h of this.handlers) h.onChange?.(key, undefined);
    };
    if (afterMs <= 0) return fire();
    const t = setTimeout(() => {
      this.timers.delete(t);
      fire();
    }, afterMs);
    t.unref();
    this.timers.add(t);
  }
}

/** The controller watch that turns a followed operation's answer into a look at its key. */
export const answeredWaits = (ops: FollowedOperations): Watch<string> => ({ informer: ops, toKeys: (key) => [key] });
