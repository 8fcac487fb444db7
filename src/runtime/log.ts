/**
 * Where `nodevisor-runtime` reports: runc's `--log FILE` and `--log-format text|json`. The
 * runc shim reads the last `"level":"error"` line of its log file (json) to tell containerd
 * why a command failed, so errors are written there in runc's shape
 * (`{"level":"error","msg":"...","time":"..."}`). Without --log they go to stderr.
 */
import { appendFileSync } from 'node:fs';

import type { LogFormat } from './args.js';

export interface RuntimeLog {
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
}

/** The line `message` is written as, in `format`. */
export function formatLogLine(format: LogFormat, level: 'error' | 'warning' | 'info', message: string, now = new Date()): string {
  if (format === 'json') return `${JSON.stringify({ level, msg: message, time: now.toISOString() })}\n`;
  return `time="${now.toISOString()}" level=${level} msg=${JSON.stringify(message)}\n`;
}

/**
 * A log writing to `path` ('' = stderr). Synchronous appends: a command writes a line or two
 * just before it exits, and the line must be in the file when the shim reads it.
 */
export function openLog(path: string, format: LogFormat, verbose = false): RuntimeLog {
  const write = (level: 'error' | 'warning' | 'info', message: string) => {
    const line = formatLogLine(format, level, message);
    if (!path) {
      process.stderr.write(line);
      return;
    }
    try {
      appendFileSync(path, line);
    } catch (err) {
      process.stderr.write(`nodevisor-runtime: cannot write the log ${path}: ${(err as Error).message}\n${line}`);
    }
  };
  return {
    error: (m) => write('error', m),
    warn: (m) => write('warning', m),
    info: (m) => {
      if (verbose) write('info', m);
    },
  };
}
