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
// Errors are JSON `ErrorBody` with: 400 invalid request (body, path name, query: `problems`
// names each field), 401 no/invalid token (with `WWW-Authenticate: Bearer`), 403 identity not
// allowed, 404 unknown route/operation/VM, 405 method (with `Allow`), 408 body too slow
// (> 10 s), 409 conflicting body (or a disk read of a VM still running), 413 body > 1 MiB,
// 415 body not application/json, 422 the driver refused a disk read, 503 shutting down or
// cannot check the token (retry). After 408/413/415 the connection closes unread.
import type { OperationError } from '../protocol/operations';

export const AGENT_API = '/v1';

/** The body of every error answer. */
export interface ErrorBody {
  error: OperationError;
  /** 400: what is wrong, field by field (`vm.disks[0].name`, `query.waitMs`, `opId`). */
  problems?: { field: string; message: string }[];
}
