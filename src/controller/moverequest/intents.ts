// Carries out what a move's decision (decide.ts) needs, in order: holds its slot, takes its VM,
// sends its step's operation — and answers what the machine is to be told. The only part of a
// move's look that acts; every act is idempotent (a slot by UID, the lock by resourceVersion, an
// operation by opId), so a look cut short anywhere is simply taken again.
import type { MoveRequest, VirtualMachine } from '../../api/types';
import { keyOf } from '../../kube/paths';
import { componentLogger } from '../../log';
import { contextOf, type MoveState } from '../../machines';
import { askAgent } from '../agentOps';
import type { ControllerDeps } from '../deps';
import type { FollowedOperations } from '../followedOperations';
import { readStepAnswer, withLayout, type MoveDecision, type Observation, type PutStep } from './decide';
import type { MoveReservations } from './reservations';
import { lockVm } from './vmLock';

export class MoveIntents {
  private readonly log = componentLogger('moverequest');

  constructor(
    private readonly d: Pick<ControllerDeps, 'agents' | 'writers' | 'config' | 'events'>,
    private readonly reservations: MoveReservations,
    private readonly operations: FollowedOperations,
  ) {}

  async carryOut(mr: MoveRequest, m: MoveState, decision: MoveDecision): Promise<Observation> {
    const { intents, ...observation } = decision;
    for (const intent of intents) {
      switch (intent.kind) {
        case 'holdSlot':
          this.reservations.hold(intent.slot);
          break;
        case 'lockVm':
          // Lost to another request: look again in a moment (the slot is let go meanwhile).
          if (!(await this.lock(mr, intent.vm))) return { requeueAfterMs: 200 };
          break;
        case 'putStep':
          return this.put(mr, m, intent);
      }
    }
    return observation;
  }

  private async lock(mr: MoveRequest, vm: VirtualMachine): Promise<boolean> {
    const uid = mr.metadata.uid ?? '';
    const locked = await lockVm(this.d.writers.vms, mr, vm).catch((e: unknown) => {
      this.reservations.release(uid);
      throw e;
    });
    if (!locked) this.reservations.release(uid);
    return locked;
  }

  private async put(mr: MoveRequest, m: MoveState, p: PutStep): Promise<Observation> {
    const answer = await askAgent(
      () =>
        this.operations.call({
          key: keyOf(mr),
          target: { endpoint: p.endpoint, node: p.node },
          opId: p.opId,
          request: async () => (p.layoutFrom ? withLayout(p.request, await this.d.agents.listVms(p.layoutFrom)) : p.request),
        }),
      this.log,
      { move: mr.metadata.name, opId: p.opId, node: p.node },
    );
    if ('untrusted' in answer) {
      this.d.events.record(mr, 'Warning', 'AgentNotTrusted', `did not send ${p.step.request.kind} to ${p.node}: ${answer.unreachable}; the move waits, the VM is untouched`);
    }
    return readStepAnswer(p, contextOf(m), answer);
  }
}
