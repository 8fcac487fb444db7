/**
 * AgentClient against a scripted peer on a real socketpair-like Duplex (a net.Socket pair over a
 * Unix socket), checking request/response matching by id, out-of-order answers, error frames,
 * events, timeouts and close.
 */
import { createServer, createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { AgentClient } from '../../src/agent/client.js';
import { encodeFrame, FrameDecoder, type Message } from '../../src/agent/frame.js';
import type { ExitEvent, StdioEvent } from '../../src/agent/messages.js';
import { tempDir } from '../helpers/tmp.js';
import { until as waitUntil } from '../helpers/wait.js';

/** A connected pair of sockets: `client` for the AgentClient, `peer` scripted by the test. */
async function socketPair(): Promise<{ client: Socket; peer: Socket; close(): void }> {
  const path = join(tempDir('nodevisor-agent-client-'), 'sock');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = createConnection(path);
  const peer = await accepted;
  return {
    client,
    peer,
    close() {
      client.destroy();
      peer.destroy();
      server.close();
    },
  };
}

/** Collects the requests the client sends to the peer. */
function requests(peer: Socket): Message[] {
  const got: Message[] = [];
  const d = new FrameDecoder();
  peer.on('data', (chunk: Buffer) => {
    for (const item of d.push(chunk)) if ('message' in item) got.push(item.message);
  });
  return got;
}

async function until(cond: () => boolean): Promise<void> {
  await waitUntil(cond, 'the condition of this test');
}

let cleanup: (() => void) | undefined;
afterEach(() => cleanup?.());

describe('AgentClient', () => {
  it('matches responses to requests by id, also out of order', async () => {
    const pair = await socketPair();
    cleanup = pair.close;
    const sent = requests(pair.peer);
    const client = new AgentClient(pair.client);
    const ping = client.ping();
    const echo = client.echo('hi');
    await until(() => sent.length === 2);
    expect(sent).toEqual([
      { id: 1, type: 'ping' },
      { id: 2, type: 'echo', data: 'hi' },
    ]);
    pair.peer.write(encodeFrame({ id: 2, type: 'ok', data: 'hi' }));
    pair.peer.write(encodeFrame({ id: 1, type: 'ok', agent: 'nodevisor-agent', version: 1, pid: 1 }));
    expect(await echo).toBe('hi');
    expect(await ping).toEqual({ agent: 'nodevisor-agent', version: 1, pid: 1 });
    expect(client.inFlight).toBe(0);
  });

  it('adopts a request sent another way (with a restore): its answer resolves it, and its id is not reused', async () => {
    const pair = await socketPair();
    cleanup = pair.close;
    const sent = requests(pair.peer);
    const client = new AgentClient(pair.client);
    const adopted = client.adopt<{ generation: string }>(1, 'probe.generation');
    const ping = client.ping();
    await until(() => sent.length === 1);
    expect(sent).toEqual([{ id: 2, type: 'ping' }]); // nothing sent for the adopted one; id 1 skipped
    pair.peer.write(encodeFrame({ id: 1, type: 'ok', generation: '00000000000000ab' }));
    pair.peer.write(encodeFrame({ id: 2, type: 'ok', agent: 'nodevisor-probe', version: 1, pid: 0 }));
    expect(await adopted).toEqual({ generation: '00000000000000ab' });
    expect((await ping).agent).toBe('nodevisor-probe');
    await expect(client.adopt(0, 'x')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(client.adopt(1.5, 'x')).rejects.toMatchObject({ code: 'EINVAL' });
    const waiting = client.adopt(7, 'slow', { timeoutMs: 20 });
    await expect(client.adopt(7, 'again')).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('already waits') });
    await expect(waiting).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });

  it('rejects with the agent error code and message', async () => {
    const pair = await socketPair();
    cleanup = pair.close;
    const sent = requests(pair.peer);
    const client = new AgentClient(pair.client);
    const start = client.startContainer('c1');
    await until(() => sent.length === 1);
    expect(sent[0]).toEqual({ id: 1, type: 'container.start', containerId: 'c1' });
    pair.peer.write(encodeFrame({ id: 1, type: 'error', code: 'ESTATE', message: 'not created' }));
    await expect(start).rejects.toMatchObject({ name: 'NodevisorError', code: 'ESTATE', message: 'agent container.start: not created' });
  });

  it('emits stdio (decoded) and exit events, and protocol errors, without disturbing requests', async () => {
    const pair = await socketPair();
    cleanup = pair.close;
    requests(pair.peer);
    const client = new AgentClient(pair.client);
    const stdio: StdioEvent[] = [];
    const exits: ExitEvent[] = [];
    const errors: string[] = [];
    client.on('stdio', (e) => stdio.push(e));
    client.on('exit', (e) => exits.push(e));
    client.on('protocolError', (e) => errors.push(e.code));
    const wait = client.wait({ containerId: 'c1', execId: 'e1' });
    pair.peer.write(encodeFrame({ id: 0, type: 'stdio', containerId: 'c1', execId: 'e1', stream: 'stderr', data: Buffer.from('out!').toString('base64') }));
    pair.peer.write(encodeFrame({ id: 0, type: 'stdio', containerId: 'c1', execId: 'e1', stream: 'stderr', eof: true }));
    pair.peer.write(encodeFrame({ id: 0, type: 'exit', containerId: 'c1', execId: 'e1', exitCode: null, signal: 9 }));
    pair.peer.write(encodeFrame({ id: 0, type: 'error', code: 'EFRAME', message: 'skipped' }));
    pair.peer.write(encodeFrame({ id: 99, type: 'ok' })); // nobody asked
    pair.peer.write(Buffer.from([3, 0, 0, 0, 0x7b, 0x7d, 0x20])); // '{} ' : no id
    pair.peer.write(encodeFrame({ id: 1, type: 'ok', exitCode: null, signal: 9 }));
    expect(await wait).toEqual({ exitCode: null, signal: 9 });
    expect(stdio).toEqual([
      { containerId: 'c1', execId: 'e1', stream: 'stderr', data: Buffer.from('out!') },
      { containerId: 'c1', execId: 'e1', stream: 'stderr', eof: true },
    ]);
    expect(exits).toEqual([{ containerId: 'c1', execId: 'e1', exitCode: null, signal: 9 }]);
    expect(errors).toEqual(['EFRAME', 'EBADFRAME', 'EBADFRAME']);
  });

  it('times out a request that gets no answer; wait has no timeout by default', async () => {
    const pair = await socketPair();
    cleanup = pair.close;
    requests(pair.peer);
    const client = new AgentClient(pair.client, { timeoutMs: 50 });
    await expect(client.ping()).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    let settled = false;
    const wait = client.wait({ containerId: 'c' }).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 120));
    expect(settled).toBe(false);
    client.close();
    await expect(wait).rejects.toMatchObject({ code: 'ECLOSED' });
  });

  it('rejects pending and new requests when the stream closes', async () => {
    const pair = await socketPair();
    cleanup = pair.close;
    requests(pair.peer);
    const client = new AgentClient(pair.client);
    const ping = client.ping();
    let closed = false;
    client.on('close', () => (closed = true));
    pair.peer.end();
    await expect(ping).rejects.toMatchObject({ code: 'ECLOSED' });
    expect(closed).toBe(true);
    await expect(client.ping()).rejects.toMatchObject({ code: 'ECLOSED' });
  });

  it('refuses to send a request over the frame maximum', async () => {
    const pair = await socketPair();
    cleanup = pair.close;
    const client = new AgentClient(pair.client);
    await expect(client.echo('x'.repeat(2 << 20))).rejects.toMatchObject({ code: 'EFRAME' });
  });
});
