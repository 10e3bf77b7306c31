// How the controller reaches agents, and how it reads what they say. The AgentClient of src/agent
// implements AgentOps; tests of the controller run real agents behind it.
import { AgentRequestError, AgentUntrustedError, type AgentTarget } from '../agent/client';
import type { OperationRequest, OperationStatus } from '../protocol/operations';
import type { VmInfo } from '../protocol/vm';
import type { Logger } from '../log';

export interface AgentOps {
  /** `target.node`: the node the agent's certificate must name. */
  putOperation(target: AgentTarget, opId: string, req: OperationRequest, opts: { waitMs: number }): Promise<OperationStatus>;
  /** Undefined when the agent does not know the operation. */
  getOperation(target: AgentTarget, opId: string, opts: { waitMs: number }): Promise<OperationStatus | undefined>;
  listVms(target: AgentTarget): Promise<VmInfo[]>;
}

/**
 * A look at an operation still running asks again after this long at the latest. Only a
 * backstop: the operation's end (or the end of one long poll) wakes the look sooner (followedOperations.ts).
 */
export const RUNNING_REQUEUE_MS = 10_000;

/**
 * What came of one call to an agent: its answer; a refusal — the agent understood and said no (a
 * bad request, a different body for the same opId), which asking again cannot change; or no
 * useful answer — unreachable, 5xx, throttled (429), or an auth failure, which is about the
 * controller's identity rather than the request and may heal — which the caller asks again.
 */
export type AgentAnswer<T> = { answer: T } | { refused: string } | { unreachable: string; untrusted?: true };

/** Make one call (the MoveRequest and VirtualMachine reconcilers' calls alike) and sort what came of it. */
export async function askAgent<T>(call: () => Promise<T>, log: Logger, about: Record<string, unknown>): Promise<AgentAnswer<T>> {
  try {
    return { answer: await call() };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof AgentRequestError && !err.transient && err.status !== 401 && err.status !== 403) {
      log.warn({ ...about, err: message }, 'agent refused the call');
      return { refused: message };
    }
    // A certificate that is not the node's: nothing reached that agent; the caller says so to the user.
    if (err instanceof AgentUntrustedError) {
      log.warn({ ...about, err: message }, 'agent not trusted; retrying');
      return { unreachable: message, untrusted: true };
    }
    log.warn({ ...about, err: message }, 'agent call failed; retrying');
    return { unreachable: message };
  }
}
