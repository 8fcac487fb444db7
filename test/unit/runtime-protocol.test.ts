/**
 * The runtime's daemon protocol on a real unix socket: JSON lines split anywhere by the
 * transport, replies and their errors, a daemon that is not there, and a line that is not JSON;
 * and the exit status a relay turns a process's end into.
 */
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { exitStatusCode } from '../../src/runtime/relay.js';
import { DAEMON_GONE, connectDaemon, onMessages, request, send, type Message } from '../../src/runtime/protocol.js';
import { tempDir } from '../helpers/tmp.js';

let server: Server | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A daemon stand-in that answers each request with `answer(request)`, written byte by byte. */
async function daemon(answer: (m: Message) => string): Promise<string> {
  const path = join(tempDir(), 'd.sock');
  server = createServer((socket) => {
    onMessages(
      socket,
      (m) => {
        const text = answer(m);
        // One byte per write: the reader must reassemble lines.
        void (async () => {
          for (const ch of text) {
            socket.write(ch);
            await new Promise((r) => setImmediate(r));
          }
          socket.end();
        })();
      },
      () => undefined,
    );
  });
  await new Promise<void>((resolve) => server!.listen(path, resolve));
  return path;
}

describe('runtime protocol', () => {
  it('sends a request and reassembles its reply', async () => {
    const path = await daemon((m) => `${JSON.stringify({ ok: true, echo: m.op })}\n`);
    expect(await request(path, { op: 'status', id: 'c' })).toEqual({ ok: true, echo: 'status' });
  });

  it("turns { ok: false } into an error with the daemon's code", async () => {
    const path = await daemon(() => `${JSON.stringify({ ok: false, error: 'container c: container not running', code: 'ESRCH' })}\n`);
    await expect(request(path, { op: 'signal', id: 'c' })).rejects.toMatchObject({ code: 'ESRCH', message: 'container c: container not running' });
  });

  it('says the daemon is gone when nothing listens, or it closes without a reply', async () => {
    await expect(connectDaemon(join(tempDir(), 'none.sock'))).rejects.toMatchObject({ code: DAEMON_GONE });
    const path = await daemon(() => '');
    await expect(request(path, { op: 'start', id: 'c' })).rejects.toMatchObject({ code: DAEMON_GONE, message: expect.stringContaining('during start') });
  });

  it('rejects a line that is not a JSON object', async () => {
    const path = await daemon(() => 'not json\n');
    await expect(request(path, { op: 'state', id: 'c' })).rejects.toMatchObject({ code: 'EPROTO' });
    const path2 = await daemon(() => '[1]\n');
    await expect(request(path2, { op: 'state', id: 'c' })).rejects.toMatchObject({ code: 'EPROTO' });
  });

  it('writes nothing to a socket that is gone', async () => {
    const path = await daemon(() => `${JSON.stringify({ ok: true })}\n`);
    const socket = await connectDaemon(path);
    socket.destroy();
    expect(() => send(socket, { op: 'x' })).not.toThrow();
  });
});

describe('relay exit status', () => {
  it('is the exit code, 128 + the signal, or 255 when neither is known', () => {
    expect(exitStatusCode({ exitCode: 3, signal: null })).toBe(3);
    expect(exitStatusCode({ exitCode: null, signal: 9 })).toBe(137);
    expect(exitStatusCode({})).toBe(255);
  });
});
