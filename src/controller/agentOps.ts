// How the controller reaches agents. The AgentClient of src/agent implements it; tests of the
// controller run real agents behind it.
import type { OperationRequest, OperationStatus } from '../protocol/operations';
import type { VmInfo } from '../protocol/vm';

export interface AgentOps {
  putOperation(endpoint: string, opId: string, req: OperationRequest, opts: { waitMs: number }): Promise<OperationStatus>;
  listVms(endpoint: string): Promise<VmInfo[]>;
}
