// Errors of the agent and how any error is classified as transient (try again) or permanent.
import type { OperationError } from '../protocol/operations';

/** An error answered over HTTP with a status code. */
export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(
    message: string,
    readonly status: number,
    readonly transient: boolean,
  ) {
    super(message);
  }
}

export const badRequest = (message: string): AgentError => new AgentError(message, 400, false);

/** A body the protocol refuses: 400, with each problem naming its field. */
export class InvalidRequest extends AgentError {
  constructor(
    what: string,
    readonly problems: { field: string; message: string }[],
  ) {
    super(`invalid ${what}: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`, 400, false);
  }
}
export const notFound = (message: string): AgentError => new AgentError(message, 404, false);
export const conflict = (message: string): AgentError => new AgentError(message, 409, false);

/** An operation failed; carries what the operation's status should say. */
export class OperationFailure extends Error {
  override readonly name = 'OperationFailure';
  constructor(
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
  }
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'EBUSY',
  'EAGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

const TRANSIENT_MESSAGE = /\b(busy|timed? ?out|timeout|temporar(il)?y|try again|connection (refused|reset|closed)|socket hang up)\b/i;

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Whether trying again may succeed: what the error says, else its code, else its message. */
export function isTransient(err: unknown): boolean {
  const declared = (err as { transient?: unknown } | null)?.transient;
  if (typeof declared === 'boolean') return declared;
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'AbortError' || name === 'TimeoutError') return true;
  const code = errorCode(err);
  if (code && TRANSIENT_CODES.has(code)) return true;
  return TRANSIENT_MESSAGE.test(errorMessage(err));
}

export function errorMessage(err: unknown): string {
  // Duck-typed: errors from fetch (undici) may come from another realm than this code's Error.
  const message = (err as { message?: unknown } | null)?.message;
  if (typeof message !== 'string') return String(err);
  const cause = (err as { cause?: { message?: unknown; code?: unknown } }).cause;
  // fetch() says only "fetch failed"; the useful part is in the cause.
  if (message === 'fetch failed' && cause) {
    const detail = typeof cause.message === 'string' && cause.message ? cause.message : cause.code;
    if (detail) return `${message}: ${String(detail)}`;
  }
  return message;
}

export function toOperationError(err: unknown): OperationError {
  return { message: errorMessage(err), transient: isTransient(err) };
}
