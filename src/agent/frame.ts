/**
 * Framing of the agent protocol (docs/protocol.md): a u32 little-endian payload length, then
 * that many bytes of UTF-8 JSON holding one object with `id` and `type`. The C side is
 * native/guest/protocol/frame.h; the limits here must stay equal to its constants.
 *
 * Runs on the JS thread. The decoder keeps at most one frame's bytes: a header announcing more
 * than MAX_FRAME_PAYLOAD is reported and its payload skipped as it streams by.
 */
import { isUtf8 } from 'node:buffer';

import { NodevisorError } from '../errors.js';

export const FRAME_HEADER_SIZE = 4;
/** Largest payload either side sends or accepts (NV_FRAME_MAX_PAYLOAD). */
export const MAX_FRAME_PAYLOAD = 1 << 20;
/** Smallest JSON object, `{}`. */
export const MIN_FRAME_PAYLOAD = 2;
/** Largest request id: ids are JSON numbers, exact up to 2^53 - 1. */
export const MAX_MESSAGE_ID = Number.MAX_SAFE_INTEGER;

/** A decoded message: any JSON object with an integer `id` and a string `type`. */
export interface Message {
  id: number;
  type: string;
  [field: string]: unknown;
}

/** Encodes one message as a frame. Throws EFRAME when the payload would exceed the maximum. */
export function encodeFrame(message: Message): Buffer {
  const json = JSON.stringify(message);
  const length = Buffer.byteLength(json, 'utf8');
  if (length > MAX_FRAME_PAYLOAD) {
    throw new NodevisorError(
      `agent message "${message.type}" is ${length} bytes, over the frame maximum of ${MAX_FRAME_PAYLOAD}`,
      { code: 'EFRAME' },
    );
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_SIZE + length);
  frame.writeUInt32LE(length, 0);
  frame.write(json, FRAME_HEADER_SIZE, 'utf8');
  return frame;
}

/** Checks that a parsed payload is a message; returns a description of what is wrong, or undefined. */
export function messageProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the payload is not a JSON object';
  const { id, type } = value as { id?: unknown; type?: unknown };
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_MESSAGE_ID) {
    return 'the message has no integer id between 0 and 2^53-1';
  }
  if (typeof type !== 'string') return 'the message has no string type';
  return undefined;
}

/** Decodes a payload (without its header). Throws EBADFRAME. */
export function decodePayload(payload: Buffer): Message {
  // isUtf8 then toString, rather than a fatal TextDecoder: the same check, without an ICU
  // converter made per frame (~40 µs of a VM hand-over's answer, measured here).
  if (!isUtf8(payload)) throw new NodevisorError('agent frame is not valid UTF-8 JSON: the payload is not UTF-8', { code: 'EBADFRAME' });
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new NodevisorError(`agent frame is not valid UTF-8 JSON: ${(err as Error).message}`, {
      code: 'EBADFRAME',
      cause: err,
    });
  }
  const problem = messageProblem(value);
  if (problem) throw new NodevisorError(`agent frame: ${problem}`, { code: 'EBADFRAME' });
  return value as Message;
}

/** Decodes exactly one whole frame (header and payload). Throws EFRAME / EBADFRAME. */
export function decodeFrame(frame: Buffer): Message {
  if (frame.length < FRAME_HEADER_SIZE) throw new NodevisorError('agent frame: short header', { code: 'EFRAME' });
  const length = frame.readUInt32LE(0);
  checkLength(length);
  if (frame.length !== FRAME_HEADER_SIZE + length) {
    throw new NodevisorError(
      `agent frame: header says ${length} bytes, got ${frame.length - FRAME_HEADER_SIZE}`,
      { code: 'EFRAME' },
    );
  }
  return decodePayload(frame.subarray(FRAME_HEADER_SIZE));
}

function checkLength(length: number): void {
  if (length < MIN_FRAME_PAYLOAD || length > MAX_FRAME_PAYLOAD) {
    throw new NodevisorError(
      `agent frame length ${length} is outside ${MIN_FRAME_PAYLOAD}..${MAX_FRAME_PAYLOAD}`,
      { code: 'EFRAME' },
    );
  }
}

/** What the streaming decoder produced: a message, or a frame it refused (and skipped). */
export type Decoded = { message: Message } | { error: NodevisorError };

/**
 * Turns a byte stream into messages, whatever the chunking. Bytes are kept as a list of chunks
 * and copied only when a header or payload spans chunks, so a 1 MiB frame arriving in small
 * chunks costs one copy, and many small frames in one chunk cost none.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private skipping = 0;
  private expected: number | undefined;

  /** Feeds a chunk; returns what it completed, in order. */
  push(chunk: Buffer): Decoded[] {
    const out: Decoded[] = [];
    let data = chunk;
    if (this.skipping > 0) {
      const drop = Math.min(this.skipping, data.length);
      this.skipping -= drop;
      data = data.subarray(drop);
    }
    if (data.length > 0) {
      this.chunks.push(data);
      this.buffered += data.length;
    }
    for (;;) {
      if (this.expected === undefined) {
        if (this.buffered < FRAME_HEADER_SIZE) break;
        const length = this.take(FRAME_HEADER_SIZE).readUInt32LE(0);
        try {
          checkLength(length);
          this.expected = length;
        } catch (err) {
          out.push({ error: err as NodevisorError });
          this.skip(length);
          continue;
        }
      }
      if (this.buffered < this.expected) break;
      const payload = this.take(this.expected);
      this.expected = undefined;
      try {
        out.push({ message: decodePayload(payload) });
      } catch (err) {
        out.push({ error: err as NodevisorError });
      }
    }
    return out;
  }

  /** Bytes held for an incomplete frame (never more than one frame). */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Removes and returns the first n buffered bytes; copies only when they span chunks. */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let head: Buffer;
    if (first.length >= n) {
      head = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      // Walk the chunks with an index and drop the used ones in one splice: shift() per chunk
      // would be quadratic when a frame arrived a byte at a time.
      head = Buffer.allocUnsafe(n);
      let filled = 0;
      let used = 0;
      while (filled < n) {
        const chunk = this.chunks[used]!;
        const part = Math.min(chunk.length, n - filled);
        chunk.copy(head, filled, 0, part);
        filled += part;
        if (part === chunk.length) used++;
        else this.chunks[used] = chunk.subarray(part);
      }
      this.chunks.splice(0, used);
    }
    this.buffered -= n;
    return head;
  }

  private skip(n: number): void {
    const drop = Math.min(n, this.buffered);
    if (drop > 0) this.take(drop);
    this.skipping = n - drop;
  }
}
