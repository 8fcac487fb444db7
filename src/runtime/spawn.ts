/**
 * Starting the runtime's long-lived helpers from a command: the sandbox daemon (daemon.ts) and
 * the relays (relay.ts). Each writes one status line to its fd 3 ("ready", or "error ...") and
 * closes it; the command waits for that line, so it returns only once the helper is really up,
 * and reports the helper's own error otherwise.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { NodevisorError } from '../errors.js';
import { withConsole } from './console.js';

/** How long a helper may take to report (the daemon only listens; a relay attaches). */
const READY_MS = 30_000;

function script(name: string): string {
  return fileURLToPath(new URL(`./${name}.js`, import.meta.url));
}

/** Resolves once `child` reported ready on fd 3; rejects with what it said or why it ended. */
function waitReady(child: ChildProcess, what: string, logFile?: string): Promise<void> {
  const status = child.stdio[3] as Readable;
  return new Promise<void>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => fail(`${what} did not report ready in ${READY_MS} ms`), READY_MS);
    const fail = (message: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      void (logFile ? readFile(logFile, 'utf8').catch(() => '') : Promise.resolve('')).then((log) => {
        const tail = log.trim().split('\n').slice(-5).join('\n');
        reject(new NodevisorError(`${message}${tail ? `\n${tail}` : ''}`, { code: 'EHELPER' }));
      });
    };
    child.once('error', (err) => fail(`cannot start ${what}: ${err.message}`));
    status.setEncoding('utf8');
    status.on('data', (chunk: string) => (text += chunk));
    status.on('error', () => undefined);
    status.on('close', () => {
      const line = text.trim();
      if (line === 'ready') {
        clearTimeout(timer);
        resolve();
      } else {
        fail(line.startsWith('error ') ? line.slice(6) : `${what} ended before it was ready${child.exitCode !== null ? ` (exit status ${child.exitCode})` : ''}`);
      }
    });
  });
}

/** Lets this command exit without waiting for `child`, which lives on. */
function letGo(child: ChildProcess): void {
  (child.stdio[3] as Readable | null)?.destroy();
  child.unref();
}

/** Starts the daemon of a sandbox; its stdout and stderr go to `logFd`. Resolves to its pid. */
export async function startDaemon(options: object, logFd: number, logFile: string): Promise<number> {
  const child = spawn(process.execPath, [script('daemon'), JSON.stringify(options)], {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'pipe'],
    env: { ...process.env, NODEVISOR_LOG_LEVEL: process.env.NODEVISOR_LOG_LEVEL ?? 'info' },
  });
  await waitReady(child, 'the sandbox daemon', logFile);
  letGo(child);
  return child.pid!;
}

/** A relay that was started: its pid, and its exit status once it ends (for a relay that is not detached). */
export interface Relay {
  pid: number;
  exited: Promise<number>;
}

/**
 * Starts a relay for a process of the daemon at `socket`, on this command's stdio (the shim's
 * pipes), or on a pty whose master goes to `consoleSocket`. `detached`: in its own session,
 * outliving this command (the shim reaps it).
 */
export async function startRelay(socket: string, attach: object, detached: boolean, consoleSocket?: string): Promise<Relay> {
  const stdio: StdioOptions = ['inherit', 'inherit', 'inherit', 'pipe'];
  const argv = [process.execPath, script('relay'), socket, JSON.stringify({ ...attach, detached })];
  // With a console socket: the relay's stdio is a pty whose master went there (console.ts).
  const { command, args } = consoleSocket ? withConsole(consoleSocket, argv) : { command: argv[0]!, args: argv.slice(1) };
  const child = spawn(command, args, { detached, stdio });
  // Listened for from the start: a quick process may end before the caller asks.
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? osConstants.signals[signal] : 0))));
  await waitReady(child, consoleSocket ? 'the stdio relay (python3 sends the pty to the console socket)' : 'the stdio relay');
  if (detached) letGo(child);
  else (child.stdio[3] as Readable | null)?.destroy();
  return { pid: child.pid!, exited };
}
