/**
 * Gets the ELF kernel (vmlinux) out of a bzImage, for VMMs that boot Linux through its PVH entry
 * (nodevisor's loader takes ELF kernels with a Xen PVH note; Debian's cloud kernel has CONFIG_PVH).
 *
 * The bzImage setup header (Documentation/arch/x86/boot.rst) gives the compressed payload's
 * offset and length; the payload's magic tells the compression, and the last 4 bytes of the
 * payload are the uncompressed size, which the result must match. gzip is decompressed here;
 * xz, zstd and lz4 by their command-line tools. JS thread; tools run as child processes.
 */
import { spawn } from 'node:child_process';
import { gunzipSync } from 'node:zlib';

import { NodevisorError } from '../../errors.js';

function invalid(what: string): NodevisorError {
  return new NodevisorError(`not a bzImage with a compressed vmlinux: ${what}`, { code: 'EINVAL' });
}

/** Runs `tool args` with `input` on stdin; resolves stdout. A non-zero exit is tolerated when
 * `tolerateExit` (lz4 complains about the kernel's trailing size word but decodes everything). */
function pipeThrough(tool: string, args: string[], input: Buffer, tolerateExit: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) =>
      reject(new NodevisorError(`cannot run ${tool} to unpack the kernel: ${err.message}`, { code: 'ENOENT', cause: err })),
    );
    child.on('close', (code) => {
      if (code === 0 || tolerateExit) resolve(Buffer.concat(out));
      else reject(new NodevisorError(`${tool} failed to unpack the kernel: ${stderr.trim()}`, { code: 'EFAIL' }));
    });
    child.stdin.on('error', () => undefined); // the tool may exit before reading everything
    child.stdin.end(input);
  });
}

/** The decompressor a payload needs, by its magic, or undefined for an unknown format. */
export function payloadCompression(payload: Buffer): 'gzip' | 'xz' | 'zstd' | 'lz4' | undefined {
  if (payload.length >= 2 && payload[0] === 0x1f && payload[1] === 0x8b) return 'gzip';
  if (payload.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (payload.length >= 4 && payload.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (payload.length >= 4 && payload.readUInt32LE(0) === 0x184c2102) return 'lz4';
  return undefined;
}

/** The uncompressed ELF kernel inside `bzImage`. */
export async function extractVmlinux(bzImage: Buffer): Promise<Buffer> {
  if (bzImage.length < 0x260 || bzImage.toString('latin1', 0x202, 0x206) !== 'HdrS') throw invalid('no HdrS magic');
  if (bzImage.readUInt16LE(0x206) < 0x208) throw invalid('boot protocol older than 2.08 (no payload fields)');
  const setupSects = bzImage[0x1f1] || 4;
  const payloadOffset = bzImage.readUInt32LE(0x248);
  const payloadLength = bzImage.readUInt32LE(0x24c);
  const start = (setupSects + 1) * 512 + payloadOffset;
  if (payloadLength < 8 || start + payloadLength > bzImage.length) throw invalid('payload outside the file');
  const payload = bzImage.subarray(start, start + payloadLength);
  const expectedSize = payload.readUInt32LE(payload.length - 4);
  const kind = payloadCompression(payload);
  let vmlinux: Buffer;
  switch (kind) {
    case 'gzip':
      vmlinux = gunzipSync(payload);
      break;
    case 'xz':
      vmlinux = await pipeThrough('xz', ['-dc', '--single-stream'], payload, true);
      break;
    case 'zstd':
      vmlinux = await pipeThrough('zstd', ['-dc'], payload.subarray(0, payload.length - 4), false);
      break;
    case 'lz4':
      vmlinux = await pipeThrough('lz4', ['-dc'], payload, true);
      break;
    default:
      throw invalid(`unknown compression (magic ${payload.subarray(0, 4).toString('hex')})`);
  }
  if (vmlinux.length !== expectedSize || vmlinux.readUInt32BE(0) !== 0x7f454c46) {
    throw invalid(`${kind} payload decompressed to ${vmlinux.length} bytes, expected an ELF of ${expectedSize}`);
  }
  return vmlinux;
}
