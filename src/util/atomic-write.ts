/**
 * Replacing a file so that a reader (a VM being started, a concurrent build) sees the old file
 * or the whole new one, never half of it: the content goes to a staging file next to `path`
 * (same directory, so the same file system), which is then renamed over `path`. When writing
 * fails the staging file is removed, so nothing is left behind. Called on the JS thread; the
 * file I/O runs on libuv's thread pool (fs/promises), so the event loop never waits on the disk.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, rename, rm, writeFile } from 'node:fs/promises';

async function replaceAtomically(path: string, fill: (staging: string) => Promise<void>): Promise<void> {
  // pid and a random part: two writers of the same path, in this process or another, never share one.
  const staging = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await fill(staging);
    await rename(staging, path);
  } catch (err) {
    await rm(staging, { force: true });
    throw err;
  }
}

/** Writes `data` to `path` with write-then-rename. */
export function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  return replaceAtomically(path, (staging) => writeFile(staging, data));
}

/** Copies `source` to `path` with copy-then-rename. */
export function copyFileAtomic(source: string, path: string): Promise<void> {
  return replaceAtomically(path, (staging) => copyFile(source, staging));
}
