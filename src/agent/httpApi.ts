// The agent's HTTP API, spoken by the agent (server) and the controller's AgentClient, both in
// this folder. What travels in the bodies (operations, VMs, migrations) is src/protocol.
//
//   GET  /healthz                         liveness, no auth
//   GET  /v1/vms                          VmInfo[] — what this host runs
//   PUT  /v1/operations/{opId}?waitMs=N   start (or re-submit) an operation; answers its status,
//                                         waiting up to N ms for it to finish
//   GET  /v1/operations/{opId}?waitMs=N   status of an operation (404 when unknown)
//   GET  /v1/disks/{vmId}/{disk}          stream a disk (for another agent's cold copy)
//
// Errors are JSON `ErrorBody` with: 400 invalid request, 401 no/invalid token (with
// `WWW-Authenticate: Bearer`), 403 identity not allowed, 404 unknown route/operation/VM,
// 409 conflicting body (or a disk read of a VM still running), 422 the driver refused a disk
// read, 503 shutting down or cannot check the token (retry).
import type { OperationError } from '../protocol/operations';

export const AGENT_API = '/v1';

/** The body of every error answer. */
export interface ErrorBody {
  error: OperationError;
}
