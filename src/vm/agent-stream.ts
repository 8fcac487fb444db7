/**
 * `vm.agent`: the agent channel (the VM's virtio-console) as a Node Duplex stream, with flow
 * control both ways:
 * - host → guest: the device takes what fits in its bounded buffer; the rest of a write waits
 *   for the device's "writable" signal (the guest took enough), so `write()` returns false and
 *   'drain' comes later, as with a socket;
 * - guest → host: bytes are pulled from the device only while the stream's consumer wants
 *   more (`push` returns true); when it stops, the device stops taking the guest's transmit
 *   buffers and the guest waits.
 *
 * Runs on the JS thread; the addon calls it through the VM's event channel.
 */
import { Duplex } from 'node:stream';

import { NodevisorError } from '../errors.js';

/** The part of the native VM handle the stream uses. */
export interface AgentIo {
  writeAgent(bytes: Uint8Array): number;
  readAgent(max: number): Buffer;
}

/** Largest piece pulled from the device at once. */
const READ_CHUNK = 64 * 1024;

export class AgentStream extends Duplex {
  #io: AgentIo;
  #wantsData = false;
  #ended = false;
  #pending: { chunk: Buffer; offset: number; callback: (err?: Error | null) => void } | undefined;

  constructor(io: AgentIo) {
    super({ allowHalfOpen: true });
    this.#io = io;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.#ended) {
      callback(new NodevisorError('the VM has ended: the agent channel is closed', { code: 'EPIPE' }));
      return;
    }
    this.#pending = { chunk, offset: 0, callback };
    this.#flushPending();
  }

  override _read(): void {
    this.#wantsData = true;
    this.#pull();
  }

  override _final(callback: (err?: Error | null) => void): void {
    // The console has no half-close; ending our side only stops further writes.
    callback();
  }

  /** @internal The device has guest output waiting. */
  onReadable(): void {
    if (this.#wantsData) this.#pull();
  }

  /** @internal The device has room for more input. */
  onWritable(): void {
    this.#flushPending();
  }

  /** @internal The VM ended: deliver everything the guest wrote, then end the stream. */
  onVmEnded(): void {
    if (this.#ended) return;
    this.#ended = true;
    // All of it, whatever push() says about the buffer: nothing is coming after this.
    for (;;) {
      const data = this.#io.readAgent(READ_CHUNK);
      if (data.length === 0) break;
      this.push(data);
    }
    this.push(null);
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.callback(new NodevisorError('the VM ended before the agent took this write', { code: 'EPIPE' }));
  }

  #flushPending(): void {
    const pending = this.#pending;
    if (!pending) return;
    while (pending.offset < pending.chunk.length) {
      const taken = this.#io.writeAgent(pending.chunk.subarray(pending.offset));
      if (taken === 0) return; // full: onWritable() continues
      pending.offset += taken;
    }
    this.#pending = undefined;
    pending.callback();
  }

  #pull(): void {
    for (;;) {
      const data = this.#io.readAgent(READ_CHUNK);
      if (data.length === 0) return; // onReadable() brings more
      if (!this.push(data)) {
        this.#wantsData = false;
        return;
      }
    }
  }
}
