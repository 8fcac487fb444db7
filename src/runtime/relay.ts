#!/usr/bin/env node
/**
 * The host process whose pid `create` and `exec` write to `--pid-file`: it relays one
 * container process's stdio (its own fds 0, 1, 2, which are the shim's pipes) to and from the
 * sandbox daemon, and exits with the process's status (128 + the signal when a signal ended
 * it), so the shim's reaper (a subreaper that waits for this pid) sees the container's exit.
 *
 * Signals sent to it are passed on to the process (the shim kills an exec by signalling the
 * pid it was given); SIGKILL cannot be caught, and the daemon then kills the process itself
 * when this relay's connection closes.
 *
 * `node relay.js <daemon socket> <json: { id, execId?, process?, detached }>`, fd 3 a pipe: "ready\n" is
 * written there once attached (or "error <message>\n"), then closed.
 */
import { createWriteStream } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { pathToFileURL } from 'node:url';

import { connectDaemon, onMessages, send, type Message } from './protocol.js';

const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT'];

/** The exit status a process's ExitStatus becomes. */
export function exitStatusCode(exit: { exitCode?: unknown; signal?: unknown }): number {
  if (typeof exit.exitCode === 'number') return exit.exitCode;
  if (typeof exit.signal === 'number') return 128 + exit.signal;
  return 255;
}

/** How long a detached relay waits, once its command has exited, before it exits itself. */
const SHIM_RECORD_MS = 100;
/** At most this long for the command that started a detached relay to exit. */
const REPARENT_MS = 5000;

/**
 * Resolves once the command that started this relay has exited (this process got another
 * parent: the shim, a subreaper), and a little later. The runc shim of containerd 1.6 records
 * an exec's pid from the pid file only after that command returns, and drops the exit of a
 * pid it does not know yet: a process quicker than that (`sh -c 'exit 4'` in the containerd
 * test) would never be seen to end, and `ctr task exec` would wait forever.
 */
async function afterReparent(startPpid: number): Promise<void> {
  const deadline = Date.now() + REPARENT_MS;
  while (process.ppid === startPpid && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, SHIM_RECORD_MS));
}

async function main(): Promise<number> {
  const startPpid = process.ppid;
  const [socketPath, json] = process.argv.slice(2);
  const attach = JSON.parse(json ?? '{}') as Message;
  const status = createWriteStream('', { fd: 3 });
  // A shim that closed its end of our output must not kill the relay (EPIPE): the exit status matters more.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  let socket;
  try {
    socket = await connectDaemon(socketPath ?? '');
  } catch (err) {
    status.end(`error cannot reach the sandbox daemon: ${(err as Error).message}\n`);
    return 255;
  }
  const s = socket;
  return new Promise<number>((resolve) => {
    let attached = false;
    // The daemon closes the connection after the exit status: that close is no failure.
    let gotExit = false;
    onMessages(
      s,
      (m) => {
        if (!attached) {
          if (m.ok !== true) {
            status.end(`error ${String(m.error ?? 'attach failed')}\n`);
            resolve(255);
            return;
          }
          attached = true;
          status.end('ready\n');
          for (const signal of FORWARDED) process.on(signal, () => send(s, { signal: osConstants.signals[signal] }));
          process.stdin.on('data', (chunk: Buffer) => send(s, { stdin: chunk.toString('base64') }));
          process.stdin.on('end', () => send(s, { stdinEof: true }));
          process.stdin.on('error', () => send(s, { stdinEof: true }));
          return;
        }
        if (typeof m.stdout === 'string') process.stdout.write(Buffer.from(m.stdout, 'base64'));
        else if (typeof m.stderr === 'string') process.stderr.write(Buffer.from(m.stderr, 'base64'));
        else if (typeof m.exit === 'object' && m.exit !== null) {
          const code = exitStatusCode(m.exit as Message);
          gotExit = true;
          if (attach.detached === true) void afterReparent(startPpid).then(() => resolve(code));
          else resolve(code);
        }
      },
      () => resolve(255),
    );
    s.on('error', () => undefined);
    s.on('close', () => {
      if (!attached) status.end('error the sandbox daemon closed the connection\n');
      if (!gotExit) resolve(255);
    });
    send(s, { ...attach, op: 'attach', relayPid: process.pid });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => {
      // Let stdout/stderr drain (pipes), then go: stdin may still be open.
      const exit = () => process.exit(code);
      let pending = 2;
      const one = () => --pending === 0 && exit();
      process.stdout.write('', one);
      process.stderr.write('', one);
    },
    () => process.exit(255),
  );
}
