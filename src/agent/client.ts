/**
 * AgentClient: requests and responses by id over any Duplex stream that carries the agent
 * protocol (vm.agent, or a socket to an agent in host-mode tests), plus the agent's events.
 *
 * Runs on the JS thread only. Each request is a promise settled by the response with its id;
 * `stdio` and `exit` events are emitted as they come. Frames the client cannot tie to a request
 * (error frames with id 0, undecodable frames) are emitted as 'protocolError'; the client keeps
 * going, as the agent does.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';

import { NodevisorError } from '../errors.js';
import { encodeFrame, FrameDecoder, MAX_MESSAGE_ID, type Message } from './frame.js';
import type {
  AgentProcess,
  ContainerCreate,
  ExitEvent,
  ExitStatus,
  PingResult,
  ProcessRef,
  StdioEvent,
  StorageMount,
} from './messages.js';

export interface AgentClientOptions {
  /** Default time a request may take before it is rejected with ETIMEDOUT; 0 waits forever. */
  timeoutMs?: number;
}

export interface RequestOptions {
  /** Overrides the client's default; `container.wait` uses 0 (no limit) unless given. */
  timeoutMs?: number;
}

interface Pending {
  type: string;
  resolve(value: Record<string, unknown>): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
}

export interface AgentClientEvents {
  stdio: [StdioEvent];
  exit: [ExitEvent];
  protocolError: [NodevisorError];
  close: [];
}

export class AgentClient extends EventEmitter<AgentClientEvents> {
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  private readonly timeoutMs: number;

  constructor(
    private readonly stream: Duplex,
    options: AgentClientOptions = {},
  ) {
    super();
    this.timeoutMs = options.timeoutMs ?? 30_000;
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('close', () => this.onClose(new NodevisorError('the agent channel closed', { code: 'ECLOSED' })));
    stream.on('end', () => this.onClose(new NodevisorError('the agent channel ended', { code: 'ECLOSED' })));
    stream.on('error', (err) => this.onClose(new NodevisorError(`the agent channel failed: ${err.message}`, { code: 'ECLOSED', cause: err })));
  }

  /**
   * Sends a request and resolves with the response's fields (without `id` and `type`); rejects
   * with a NodevisorError carrying the agent's `code` and `message`.
   */
  request<T = Record<string, unknown>>(type: string, fields: object = {}, options: RequestOptions = {}): Promise<T> {
    if (this.closed) return Promise.reject(new NodevisorError('the agent channel is closed', { code: 'ECLOSED' }));
    const id = this.nextId;
    this.nextId = this.nextId >= MAX_MESSAGE_ID ? 1 : this.nextId + 1;
    let frame: Buffer;
    try {
      frame = encodeFrame({ ...fields, id, type });
    } catch (err) {
      return Promise.reject(err);
    }
    const answer = this.track<T>(id, type, options);
    this.stream.write(frame);
    return answer;
  }

  /**
   * The answer to a request that reached the agent another way: its frame (`encodeFrame`,
   * with this `id`) went with the VM's restore (`Vm.restore`'s `agentInput`), before this
   * client existed. The id is not used again. Resolves and rejects as `request` does.
   */
  adopt<T = Record<string, unknown>>(id: number, type: string, options: RequestOptions = {}): Promise<T> {
    if (!Number.isSafeInteger(id) || id < 1 || id >= MAX_MESSAGE_ID) {
      return Promise.reject(new NodevisorError(`adopt: id must be an integer from 1 to ${MAX_MESSAGE_ID - 1}, got ${id}`, { code: 'EINVAL' }));
    }
    if (this.pending.has(id)) return Promise.reject(new NodevisorError(`adopt: request ${id} already waits for its answer`, { code: 'EINVAL' }));
    if (this.closed) return Promise.reject(new NodevisorError('the agent channel is closed', { code: 'ECLOSED' }));
    if (id >= this.nextId) this.nextId = id + 1;
    return this.track<T>(id, type, options);
  }

  /** A pending entry for request `id`, with its timeout; the answer settles it (onMessage). */
  private track<T>(id: number, type: string, options: RequestOptions): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = {
        type,
        resolve: resolve as (v: Record<string, unknown>) => void,
        reject,
        timer: undefined,
      };
      if (timeoutMs > 0) {
        entry.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new NodevisorError(`agent request "${type}" timed out after ${timeoutMs} ms`, { code: 'ETIMEDOUT' }));
        }, timeoutMs);
      }
      this.pending.set(id, entry);
    });
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  ping(): Promise<PingResult> {
    return this.request<PingResult>('ping');
  }

  async echo(data: string): Promise<string> {
    return (await this.request<{ data: string }>('echo', { data })).data;
  }

  async diskChecksum(serial: string, offset: number, length: number): Promise<number> {
    return (await this.request<{ crc32: number }>('disk.checksum', { serial, offset, length })).crc32;
  }

  /**
   * network.update (docs/protocol.md): configures the guest's interfaces, found by MAC (renamed
   * to `name`, MTU, addresses, link up), then routes and permanent neighbours. What
   * `connectSandboxNetwork` returns maps onto it (docs/network.md). Resolves the interfaces
   * as the guest now names them.
   */
  async networkUpdate(update: NetworkUpdate): Promise<{ mac: string; name: string; index: number }[]> {
    return (await this.request<{ interfaces: { mac: string; name: string; index: number }[] }>('network.update', { ...update }))
      .interfaces;
  }

  /** Sets the guest's CLOCK_REALTIME (after a template clone is resumed). */
  async timeSync(now: Date = new Date()): Promise<void> {
    const ms = now.getTime();
    await this.request('time.sync', { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1_000_000 });
  }

  /** Adds host randomness to the guest's pool (RNDADDENTROPY). */
  async rngReseed(seed: Buffer, entropyBits?: number): Promise<void> {
    await this.request('rng.reseed', { data: seed.toString('base64'), ...(entropyBits === undefined ? {} : { entropyBits }) });
  }

  mountStorage(mount: StorageMount, options?: RequestOptions): Promise<{ device: string; mountPoint: string }> {
    const waitMs = (mount.timeoutMs ?? 5000) + this.timeoutMs;
    return this.request('storage.mount', mount, { timeoutMs: options?.timeoutMs ?? waitMs });
  }

  async unmountStorage(mountPoint: string): Promise<void> {
    await this.request('storage.unmount', { mountPoint });
  }

  createContainer(create: ContainerCreate): Promise<{ pid: number }> {
    return this.request('container.create', create);
  }

  async startContainer(containerId: string): Promise<void> {
    await this.request('container.start', { containerId });
  }

  exec(containerId: string, execId: string, process: AgentProcess): Promise<{ pid: number }> {
    return this.request('exec', { containerId, execId, process });
  }

  /** Resolves when the process has exited; no timeout unless one is given. */
  wait(ref: ProcessRef, options: RequestOptions = {}): Promise<ExitStatus> {
    return this.request<ExitStatus>('container.wait', ref, { timeoutMs: options.timeoutMs ?? 0 });
  }

  async signal(ref: ProcessRef, signal: number): Promise<void> {
    await this.request('container.signal', { ...ref, signal });
  }

  async writeStdin(ref: ProcessRef, data: Buffer | undefined, eof = false): Promise<void> {
    await this.request('stdin', { ...ref, ...(data ? { data: data.toString('base64') } : {}), ...(eof ? { eof } : {}) });
  }

  async destroyContainer(containerId: string): Promise<void> {
    await this.request('container.destroy', { containerId });
  }

  /** Stops using the stream (does not end it): pending requests are rejected with ECLOSED. */
  close(): void {
    this.onClose(new NodevisorError('the agent client was closed', { code: 'ECLOSED' }));
  }

  private onData(chunk: Buffer): void {
    // A listener that throws (on 'stdio', 'exit', 'protocolError') must not cost the frames
    // after it in this chunk, among them responses whose promises would never settle: deliver
    // every item, then rethrow the first error.
    let failure: { error: unknown } | undefined;
    for (const item of this.decoder.push(chunk)) {
      try {
        if ('error' in item) this.emit('protocolError', item.error);
        else this.onMessage(item.message);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
  }

  private onMessage(message: Message): void {
    if (message.id === 0) {
      this.onEvent(message);
      return;
    }
    const entry = this.pending.get(message.id);
    if (!entry) {
      this.emit('protocolError', new NodevisorError(`agent answered an unknown request id ${message.id}`, { code: 'EBADFRAME' }));
      return;
    }
    this.pending.delete(message.id);
    if (entry.timer) clearTimeout(entry.timer);
    const { id: _id, type, ...fields } = message;
    if (type === 'ok') {
      entry.resolve(fields);
    } else if (type === 'error') {
      const code = typeof fields.code === 'string' ? fields.code : 'EAGENT';
      const text = typeof fields.message === 'string' ? fields.message : 'agent error';
      entry.reject(new NodevisorError(`agent ${entry.type}: ${text}`, { code }));
    } else {
      entry.reject(new NodevisorError(`agent answered ${entry.type} with type "${type}"`, { code: 'EBADFRAME' }));
    }
  }

  private onEvent(message: Message): void {
    const ref: ProcessRef = { containerId: String(message.containerId) };
    if (typeof message.execId === 'string') ref.execId = message.execId;
    switch (message.type) {
      case 'stdio': {
        const event: StdioEvent = { ...ref, stream: message.stream === 'stderr' ? 'stderr' : 'stdout' };
        if (typeof message.data === 'string') event.data = Buffer.from(message.data, 'base64');
        if (message.eof === true) event.eof = true;
        this.emit('stdio', event);
        break;
      }
      case 'exit':
        this.emit('exit', {
          ...ref,
          exitCode: typeof message.exitCode === 'number' ? message.exitCode : null,
          signal: typeof message.signal === 'number' ? message.signal : null,
        });
        break;
      case 'error':
        this.emit(
          'protocolError',
          new NodevisorError(`agent: ${String(message.message)}`, { code: typeof message.code === 'string' ? message.code : 'EAGENT' }),
        );
        break;
      default:
        this.emit('protocolError', new NodevisorError(`agent sent an unknown event "${message.type}"`, { code: 'EBADFRAME' }));
    }
  }

  private onClose(err: NodevisorError): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, entry] of this.pending) {
      if (entry.timer) clearTimeout(entry.timer);
      this.pending.delete(id);
      entry.reject(err);
    }
    this.emit('close');
  }
}

/** The body of a network.update request (docs/protocol.md). */
export interface NetworkUpdate {
  interfaces?: {
    mac: string;
    name?: string;
    mtu?: number;
    up?: boolean;
    addresses?: { address: string; prefixLength: number }[];
  }[];
  routes?: { dest: string; gateway?: string; device: string }[];
  neighbors?: { address: string; mac: string; device: string }[];
}
