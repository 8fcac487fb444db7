/**
 * The runtime's commands talk to a sandbox's daemon over a unix socket: one JSON object per
 * line each way. A command connection sends one request and reads one reply
 * (`{ ok: true, ... }` or `{ ok: false, error, code }`). An `attach` connection (a relay) then
 * stays open: output and the exit status come as `{ stdout | stderr: base64 }` and
 * `{ exit: { exitCode, signal } }`, input goes the other way as `{ stdin: base64 }`,
 * `{ stdinEof: true }` and `{ signal: n }`.
 */
import { connect, type Socket } from 'node:net';

import { NodevisorError, errorCode } from '../errors.js';

export type Message = Record<string, unknown>;

/** Reads `socket` as JSON lines; a line that is not JSON is a protocol error. */
export function onMessages(socket: Socket, handle: (message: Message) => void, onError: (err: Error) => void): void {
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line) continue;
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        onError(new NodevisorError(`protocol error: not a JSON line: ${line.slice(0, 80)}`, { code: 'EPROTO' }));
        socket.destroy();
        return;
      }
      if (typeof message !== 'object' || message === null || Array.isArray(message)) {
        onError(new NodevisorError('protocol error: a message is not an object', { code: 'EPROTO' }));
        socket.destroy();
        return;
      }
      handle(message as Message);
    }
  });
}

export function send(socket: Socket, message: Message): void {
  if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(message)}\n`);
}

/** The error a `{ ok: false }` reply stands for. */
export function replyError(reply: Message): NodevisorError {
  return new NodevisorError(String(reply.error ?? 'the sandbox daemon failed'), { code: typeof reply.code === 'string' ? reply.code : 'EFAIL' });
}

/**
 * The code of an error that says the daemon is not there (it ended with its sandbox, or
 * died): distinct from the errors its replies carry (a reply's ENOENT is about a container).
 */
export const DAEMON_GONE = 'ENODAEMON';

/** Connects to the daemon at `path`; rejects with code DAEMON_GONE when nothing listens there. */
export function connectDaemon(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    const onError = (err: Error) => {
      const code = errorCode(err);
      if (code === 'ENOENT' || code === 'ECONNREFUSED') {
        reject(new NodevisorError(`the sandbox daemon is not running (${path}: ${code})`, { code: DAEMON_GONE, path, cause: err }));
      } else reject(err);
    };
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
    socket.once('error', onError);
  });
}

/** How long one request may take (creating a VM sandbox is the slow one). */
export const REQUEST_TIMEOUT_MS = 120_000;

/** Sends one request and resolves to its reply's fields; rejects on `{ ok: false }`. */
export async function request(path: string, message: Message, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Message> {
  const socket = await connectDaemon(path);
  try {
    return await new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => reject(new NodevisorError(`the sandbox daemon did not answer ${String(message.op)} in ${timeoutMs} ms`, { code: 'ETIMEDOUT' })), timeoutMs);
      const done = (fn: () => void) => {
        clearTimeout(timer);
        fn();
      };
      onMessages(
        socket,
        (reply) => done(() => (reply.ok === true ? resolve(reply) : reject(replyError(reply)))),
        (err) => done(() => reject(err)),
      );
      socket.once('error', (err) => done(() => reject(err)));
      socket.once('close', () => done(() => reject(new NodevisorError(`the sandbox daemon closed the connection during ${String(message.op)}`, { code: DAEMON_GONE }))));
      send(socket, message);
    });
  } finally {
    socket.destroy();
  }
}
