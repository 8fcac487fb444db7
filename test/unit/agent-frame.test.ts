/** The TypeScript side of the agent framing (docs/protocol.md): encode, decode, streaming. */
import { describe, expect, it } from 'vitest';

import {
  decodeFrame,
  encodeFrame,
  FrameDecoder,
  MAX_FRAME_PAYLOAD,
  type Decoded,
} from '../../src/agent/frame.js';

function header(length: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32LE(length);
  return h;
}

function messages(items: Decoded[]): unknown[] {
  return items.map((i) => ('message' in i ? i.message : { error: i.error.code }));
}

describe('encodeFrame / decodeFrame', () => {
  it('writes a little-endian u32 length and the UTF-8 JSON', () => {
    const frame = encodeFrame({ id: 7, type: 'echo', data: 'é' });
    const json = '{"id":7,"type":"echo","data":"é"}';
    expect(frame.readUInt32LE(0)).toBe(Buffer.byteLength(json));
    expect(frame.subarray(0, 4)).toEqual(Buffer.from([Buffer.byteLength(json), 0, 0, 0]));
    expect(frame.subarray(4).toString('utf8')).toBe(json);
    expect(decodeFrame(frame)).toEqual({ id: 7, type: 'echo', data: 'é' });
  });

  it('refuses to encode a payload over the maximum, and accepts one exactly at it', () => {
    const overhead = JSON.stringify({ id: 1, type: 'echo', data: '' }).length;
    const atMax = encodeFrame({ id: 1, type: 'echo', data: 'x'.repeat(MAX_FRAME_PAYLOAD - overhead) });
    expect(atMax.readUInt32LE(0)).toBe(MAX_FRAME_PAYLOAD);
    expect(() => encodeFrame({ id: 1, type: 'echo', data: 'x'.repeat(MAX_FRAME_PAYLOAD - overhead + 1) })).toThrow(
      expect.objectContaining({ code: 'EFRAME' }),
    );
  });

  it('rejects frames whose length or payload is wrong', () => {
    expect(() => decodeFrame(Buffer.from([1, 0]))).toThrow(expect.objectContaining({ code: 'EFRAME' }));
    expect(() => decodeFrame(Buffer.concat([header(5), Buffer.from('{}')]))).toThrow(expect.objectContaining({ code: 'EFRAME' }));
    expect(() => decodeFrame(Buffer.concat([header(MAX_FRAME_PAYLOAD + 1)]))).toThrow(expect.objectContaining({ code: 'EFRAME' }));
    for (const bad of ['[1]', '{"type":"x"}', '{"id":"1","type":"x"}', '{"id":1.5,"type":"x"}', '{"id":1}', '{"id":1,"type":', 'nul']) {
      const payload = Buffer.from(bad);
      expect(() => decodeFrame(Buffer.concat([header(payload.length), payload])), bad).toThrow(
        expect.objectContaining({ code: 'EBADFRAME' }),
      );
    }
    const notUtf8 = Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]);
    expect(() => decodeFrame(Buffer.concat([header(notUtf8.length), notUtf8]))).toThrow(expect.objectContaining({ code: 'EBADFRAME' }));
  });
});

describe('FrameDecoder', () => {
  const frames = [
    encodeFrame({ id: 1, type: 'ping' }),
    encodeFrame({ id: 0, type: 'stdio', data: 'a'.repeat(100_000) }),
    encodeFrame({ id: 2, type: 'ok', text: 'ünïcödé ✓' }),
  ];
  const stream = Buffer.concat(frames);
  const expected = frames.map((f) => decodeFrame(f));

  it('decodes the same messages whatever the chunk sizes (1 byte, 3 bytes, random, whole)', () => {
    for (const size of [1, 3, 4, 5, 4096, stream.length]) {
      const d = new FrameDecoder();
      const out: Decoded[] = [];
      for (let i = 0; i < stream.length; i += size) out.push(...d.push(stream.subarray(i, i + size)));
      expect(messages(out), `chunks of ${size}`).toEqual(expected);
      expect(d.pendingBytes).toBe(0);
    }
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 7000) + 1;
    const d = new FrameDecoder();
    const out: Decoded[] = [];
    for (let i = 0; i < stream.length; ) {
      const n = rand();
      out.push(...d.push(stream.subarray(i, i + n)));
      i += n;
    }
    expect(messages(out)).toEqual(expected);
  });

  it('keeps a partial frame until the rest arrives', () => {
    const d = new FrameDecoder();
    expect(d.push(frames[0]!.subarray(0, 6))).toEqual([]);
    expect(d.pendingBytes).toBe(2);
    expect(messages(d.push(frames[0]!.subarray(6)))).toEqual([{ id: 1, type: 'ping' }]);
  });

  it('reports an oversized frame, skips its payload without buffering it, and stays in sync', () => {
    const d = new FrameDecoder();
    const big = MAX_FRAME_PAYLOAD + 10;
    const out: Decoded[] = [...d.push(header(big))];
    expect(messages(out)).toEqual([{ error: 'EFRAME' }]);
    const junk = Buffer.alloc(64 * 1024, 0x41);
    let left = big;
    while (left > 0) {
      const n = Math.min(left, junk.length);
      out.push(...d.push(junk.subarray(0, n)));
      expect(d.pendingBytes).toBe(0);
      left -= n;
    }
    out.push(...d.push(frames[0]!));
    expect(messages(out)).toEqual([{ error: 'EFRAME' }, { id: 1, type: 'ping' }]);
  });

  it('reports undecodable payloads and zero lengths, then goes on', () => {
    const d = new FrameDecoder();
    const bad = Buffer.from('{"id":1,"type":"x"');
    const out = d.push(Buffer.concat([header(bad.length), bad, header(0), frames[2]!]));
    expect(messages(out)).toEqual([{ error: 'EBADFRAME' }, { error: 'EFRAME' }, expected[2]]);
  });
});
