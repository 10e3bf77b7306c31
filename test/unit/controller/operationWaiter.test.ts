// The waiter that long-polls running operations off the reconcile workers: one poll per
// operation however often its move looks, a wake when it answers (or fails to), none once stopped.
import type { AgentTarget } from '../../../src/agent/client';
import { OperationWaiter } from '../../../src/controller/operationWaiter';
import type { OperationStatus } from '../../../src/protocol/operations';

function fakeAgents() {
  const polls: { opId: string; waitMs: number; settle: (ok: boolean) => void }[] = [];
  return {
    polls,
    getOperation: (_t: AgentTarget, opId: string, opts: { waitMs: number }) =>
      new Promise<OperationStatus | undefined>((resolve, reject) => {
        polls.push({ opId, waitMs: opts.waitMs, settle: (ok) => (ok ? resolve(undefined) : reject(new Error('connection refused'))) });
      }),
  };
}
const target = { endpoint: 'https://127.0.0.1:1', node: 'node-a' };
const flush = () => new Promise((r) => setImmediate(r));

test('one long-poll per operation while it runs; the move is woken when the agent answers', async () => {
  const agents = fakeAgents();
  const waiter = new OperationWaiter(agents, 1000);
  const woken: string[] = [];
  waiter.on({ onChange: (key) => woken.push(key) });
  waiter.wake('default/m1', target, 'uid1-start');
  waiter.wake('default/m1', target, 'uid1-start');
  waiter.wake('default/m2', target, 'uid2-start');
  expect(agents.polls.map((p) => [p.opId, p.waitMs])).toEqual([['uid1-start', 1000], ['uid2-start', 1000]]);
  expect(waiter.size).toBe(2);
  agents.polls[0]!.settle(true);
  await flush();
  expect(woken).toEqual(['default/m1']);
  // Answered: the next look that finds it still running polls again.
  waiter.wake('default/m1', target, 'uid1-start');
  expect(agents.polls).toHaveLength(3);
});

test('an agent that does not answer still wakes the move (it looks again itself); nothing after stop', async () => {
  const agents = fakeAgents();
  const waiter = new OperationWaiter(agents, 1000);
  const woken: string[] = [];
  waiter.on({ onChange: (key) => woken.push(key) });
  waiter.wake('default/m1', target, 'op-a');
  waiter.wake('default/m2', target, 'op-b');
  agents.polls[0]!.settle(false);
  await flush();
  expect(woken).toEqual(['default/m1']);
  waiter.stop();
  agents.polls[1]!.settle(true);
  await flush();
  waiter.wake('default/m3', target, 'op-c');
  expect([woken, agents.polls.length]).toEqual([['default/m1'], 2]);
});
