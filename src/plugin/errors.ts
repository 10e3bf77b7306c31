// The plugin's two kinds of failure: the user's input (exit 2) and everything else (exit 1).
import { ApiError } from '../kube/api';

/** Input the plugin or the API server refused: unknown flag, VM or move, a field the schema rejects. */
export class BadInput extends Error {
  override readonly name = 'BadInput';
}

export const EXIT = { ok: 0, failed: 1, badInput: 2, interrupted: 130 } as const;

/** One line for stderr, and the exit code it means. */
export function explain(err: unknown): { line: string; code: number } {
  if (err instanceof BadInput) return { line: err.message, code: EXIT.badInput };
  if (err instanceof ApiError) {
    const status = err.body as { message?: string } | undefined;
    const message = oneLine(status?.message ?? err.message);
    // 400 Bad Request, 404 unknown object, 409 exists, 422 schema/CEL refusal: the user's to fix.
    const userError = [400, 404, 409, 422].includes(err.status);
    return { line: message, code: userError ? EXIT.badInput : EXIT.failed };
  }
  const e = err as { code?: string; message?: string };
  if (e?.code === 'ECONNREFUSED' || e?.code === 'ENOTFOUND' || e?.code === 'ECONNRESET') return { line: `cannot reach the API server: ${e.message}`, code: EXIT.failed };
  return { line: oneLine(String(e?.message ?? err)), code: EXIT.failed };
}

export const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, '; ').trim();
