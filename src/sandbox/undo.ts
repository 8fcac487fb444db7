/**
 * Steps that can be undone, and undoing them: what createSandbox and createContainer use so a
 * failure at any step leaves nothing behind (DESIGN §8). JS thread only.
 */
import { NodevisorError, errorCode } from '../errors.js';
import { logger } from '../log/logger.js';

interface UndoEntry {
  what: string;
  fn: () => Promise<unknown> | unknown;
}

export class UndoStack {
  private entries: UndoEntry[] = [];

  /** Records how to undo a step that just succeeded. */
  push(what: string, fn: () => Promise<unknown> | unknown): void {
    this.entries.push({ what, fn });
  }

  /** Forgets everything (the creation succeeded; the owner cleans up from now on). */
  commit(): void {
    this.entries = [];
  }

  /**
   * Undoes every recorded step, newest first; an undo that fails is logged and the others still
   * run. Resolves to the failures (empty when everything was undone).
   */
  async unwind(context: Record<string, string>): Promise<Error[]> {
    const failures: Error[] = [];
    const entries = this.entries.reverse();
    this.entries = [];
    for (const { what, fn } of entries) {
      try {
        await fn();
      } catch (err) {
        logger('sandbox', context).warn({ err, undo: what }, 'rollback step failed');
        failures.push(err instanceof Error ? err : new Error(String(err)));
      }
    }
    return failures;
  }
}

/**
 * The error of a failed step: "<operation>: <step>: <cause's message>", the cause's code kept,
 * the cause chained. Rollback failures, if any, are named too (they were logged).
 */
export function stepError(operation: string, step: string, cause: unknown, rollback: Error[] = []): NodevisorError {
  const inner = cause instanceof Error ? cause.message : String(cause);
  const extra = rollback.length ? ` (and ${rollback.length} rollback step(s) failed: ${rollback.map((e) => e.message).join('; ')})` : '';
  const err = new NodevisorError(`${operation}: ${step}: ${inner}${extra}`, {
    code: errorCode(cause) ?? 'EFAIL',
    cause,
  });
  (err as NodevisorError & { step: string }).step = step;
  return err;
}
