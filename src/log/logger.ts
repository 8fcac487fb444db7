/**
 * Logging: one pino root, one child per subsystem (`vmm`, `factory`, `hooks`, `netns`, ...),
 * each line carrying `subsystem` and, where known, `sandbox` and `container`.
 *
 * A library must not write to the host application's stdout on its own, so the default root
 * is silent unless NODEVISOR_LOG_LEVEL is set (then it writes JSON lines to stderr).
 * Applications hand over their own pino logger with `setLogger`.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export type Subsystem =
  | 'oci'
  | 'rootfs'
  | 'netns'
  | 'hooks'
  | 'mapping'
  | 'factory'
  | 'vmm'
  | 'agent'
  | 'sandbox'
  | 'guest'
  | 'cli';

function defaultRoot(): Logger {
  const level = process.env.NODEVISOR_LOG_LEVEL;
  if (!level) return pino({ level: 'silent' });
  return pino({ name: 'nodevisor', level }, pino.destination(2));
}

let root: Logger = defaultRoot();
const children = new Map<Subsystem, Logger>();

/** Replaces the root logger; subsystem loggers made afterwards (and cached ones) use it. */
export function setLogger(logger: Logger): void {
  root = logger;
  children.clear();
}

/** The root logger in use. */
export function rootLogger(): Logger {
  return root;
}

/** The logger of one subsystem; `fields` (e.g. `{ sandbox, container }`) are added per call. */
export function logger(subsystem: Subsystem, fields?: { sandbox?: string; container?: string }): Logger {
  let child = children.get(subsystem);
  if (!child) {
    child = root.child({ subsystem });
    children.set(subsystem, child);
  }
  return fields ? child.child(fields) : child;
}
