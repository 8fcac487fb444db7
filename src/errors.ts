/**
 * The one error class of nodevisor. Native failures arrive as NodevisorError with the errno
 * name as `code` (`ENOENT`), the failing `syscall` and `path`; validation failures use
 * `EINVAL` or a nodevisor code (`EHOOK_TIMEOUT`, ...). Steps wrap lower errors with `cause`.
 */
export interface NodevisorErrorDetails {
  code: string;
  errno?: number;
  syscall?: string;
  path?: string;
  cause?: unknown;
}

export class NodevisorError extends Error {
  readonly code: string;
  readonly errno?: number;
  readonly syscall?: string;
  readonly path?: string;

  constructor(message: string, details: NodevisorErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'NodevisorError';
    this.code = details.code;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.path !== undefined) this.path = details.path;
  }
}

/** An invalid argument from the caller: a spec, a config, an id. */
export function invalid(message: string, cause?: unknown): NodevisorError {
  return new NodevisorError(message, { code: 'EINVAL', cause });
}

/** The `code` of a Node or nodevisor error, if it has one. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** Wraps a failure of one step, keeping the original as `cause` and its code. */
export function wrapError(message: string, cause: unknown, code?: string): NodevisorError {
  const inner = cause instanceof Error ? cause.message : String(cause);
  return new NodevisorError(`${message}: ${inner}`, {
    code: code ?? errorCode(cause) ?? 'EFAIL',
    cause,
  });
}
