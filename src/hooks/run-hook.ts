/**
 * Running one OCI hook (Kata B21), as a real child process:
 * - the executable is `hook.path` exactly (absolute; no PATH lookup);
 * - argv is `hook.args` verbatim (argv[0] included), or `[path]` when absent;
 * - the environment is `hook.env`, or this process's when `env` is absent (an empty list is
 *   an empty environment);
 * - the state JSON is written to its stdin; stdout and stderr are captured (bounded) and put
 *   in the error when it fails;
 * - with `timeout` (seconds) it is killed with SIGKILL, with its whole process group, when it
 *   overruns, and the error says "hook timeout".
 *
 * The hook runs in its own process group so a timeout also kills what it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';

import { NodevisorError } from '../errors.js';
import { enterNetNs } from '../netns/enter.js';
import { logger } from '../log/logger.js';
import type { Hook } from '../oci/spec.js';
import { validateHook } from '../oci/validate.js';
import { withSpan } from '../trace/tracing.js';
import type { HookState } from './state.js';

/** Captured output per stream; what a hook writes beyond this is dropped (and said so). */
export const HOOK_OUTPUT_LIMIT = 64 * 1024;
/** After the hook exits, how long its pipes may stay open (held by a child it left behind). */
const PIPE_GRACE_MS = 200;

export interface RunHookOptions {
  /**
   * The sandbox's network namespace. The hook is spawned with the JS thread inside it (so the
   * hook and everything it starts live there); waiting for it happens outside, as usual.
   */
  netns?: string;
}

class BoundedBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  push(chunk: Buffer): void {
    const room = HOOK_OUTPUT_LIMIT - this.size;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part !== chunk) this.truncated = true;
    this.chunks.push(part);
    this.size += part.length;
  }

  text(): string {
    const s = Buffer.concat(this.chunks).toString('utf8');
    return this.truncated ? `${s}... (truncated at ${HOOK_OUTPUT_LIMIT} bytes)` : s;
  }
}

/** `NAME=value` list → environment object; the first `=` splits, later duplicates win. */
function envListToObject(list: readonly string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const entry of list) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** Runs `hook` with `state` on stdin; resolves when it exits 0, rejects with the reason otherwise. */
export async function runHook(hook: Hook, state: HookState, options: RunHookOptions = {}): Promise<void> {
  const valid = validateHook(hook, 'hook');
  const args = valid.args && valid.args.length > 0 ? valid.args : [valid.path];
  const attributes = { 'hook.path': valid.path, 'hook.args': args.join(' '), ...(options.netns ? { netns: options.netns } : {}) };
  return withSpan('hook', attributes, () =>
    runProcess(valid, args, state, options),
  );
}

function runProcess(hook: Hook, args: string[], state: HookState, options: RunHookOptions): Promise<void> {
  const log = logger('hooks', { container: state.id });
  return new Promise<void>((resolvePromise, rejectPromise) => {
    const stdout = new BoundedBuffer();
    const stderr = new BoundedBuffer();
    let timedOut = false;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      if (graceTimer) clearTimeout(graceTimer);
      if (err) rejectPromise(err);
      else resolvePromise();
    };

    let child: ChildProcess;
    try {
      const start = () =>
        spawn(hook.path, args.slice(1), {
          argv0: args[0],
          env: hook.env ? envListToObject(hook.env) : process.env,
          stdio: ['pipe', 'pipe', 'pipe'],
          detached: true,
        });
      child = options.netns ? enterNetNs(options.netns, start) : start();
    } catch (err) {
      // enterNetNs failures (not a netns, EPERM) are already NodevisorErrors that say so.
      settle(err instanceof NodevisorError ? err : startError(hook, err));
      return;
    }

    const finish = () => {
      if (!exit) return;
      child.stdout?.destroy();
      child.stderr?.destroy();
      const output = `stdout: ${stdout.text()}, stderr: ${stderr.text()}`;
      if (timedOut) {
        log.warn({ hook: hook.path, timeout: hook.timeout }, 'hook timeout');
        settle(
          new NodevisorError(`hook timeout: ${hook.path} ran longer than ${hook.timeout} s and was killed; ${output}`, {
            code: 'EHOOK_TIMEOUT',
            path: hook.path,
          }),
        );
      } else if (exit.code === 0) {
        log.debug({ hook: hook.path }, 'hook done');
        settle();
      } else {
        const how = exit.signal ? `killed by signal ${exit.signal}` : `exit status ${exit.code}`;
        log.warn({ hook: hook.path, code: exit.code, signal: exit.signal }, 'hook failed');
        settle(new NodevisorError(`hook ${hook.path} failed: ${how}: ${output}`, { code: 'EHOOK_FAILED', path: hook.path }));
      }
    };

    child.on('error', (err) => {
      // Start failures (ENOENT, EACCES) arrive here, without an exit.
      if (child.pid === undefined) settle(startError(hook, err));
    });
    child.stdout?.on('data', (c: Buffer) => stdout.push(c));
    child.stderr?.on('data', (c: Buffer) => stderr.push(c));
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // Pipes close when the last holder exits; a child the hook left running may keep them
      // open, so stop waiting for them after a short grace.
      graceTimer = setTimeout(finish, PIPE_GRACE_MS);
    });
    child.on('close', () => finish());

    if (child.stdin) {
      child.stdin.on('error', () => {
        // EPIPE: the hook did not read its state. Not an error of the hook's.
      });
      child.stdin.end(JSON.stringify(state));
    }

    if (hook.timeout !== undefined && hook.timeout !== null) {
      timer = setTimeout(() => {
        if (exit || child.pid === undefined) return;
        timedOut = true;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, hook.timeout * 1000);
    }
  });
}

function startError(hook: Hook, err: unknown): NodevisorError {
  const e = err as NodeJS.ErrnoException;
  return new NodevisorError(`cannot start hook ${hook.path}: ${e.message}`, {
    code: e.code ?? 'EHOOK_START',
    ...(typeof e.errno === 'number' ? { errno: Math.abs(e.errno) } : {}),
    syscall: e.syscall ?? 'spawn',
    path: hook.path,
    cause: err,
  });
}
