/**
 * Path helpers for rootfs sources (Kata B10, B11). Asynchronous: they touch the disk, and
 * nodevisor never blocks the event loop on disk I/O.
 */
import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';

import { NodevisorError, errorCode, invalid } from '../errors.js';
import { inspectBlockDevice } from './blockdev.js';

/**
 * Makes `path` absolute (against the working directory) and resolves every symlink in it.
 * Errors: an empty path; a missing target ("file <abs> does not exist", code ENOENT).
 */
export async function resolvePath(path: string): Promise<string> {
  if (typeof path !== 'string' || path === '') throw invalid('path must be specified');
  const absolute = resolve(path);
  try {
    return await realpath(absolute);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT') {
      throw new NodevisorError(`file ${absolute} does not exist`, { code, path: absolute, cause: err });
    }
    throw new NodevisorError(`cannot resolve ${absolute}: ${(err as Error).message}`, {
      code: code ?? 'EFAIL',
      path: absolute,
      cause: err,
    });
  }
}

/**
 * True exactly when `path` resolves to a block device; false for anything else or on any
 * error (Kata B11). The check is the addon's inspect, on a worker thread.
 */
export async function isBlockDevice(path: string): Promise<boolean> {
  if (typeof path !== 'string' || path === '') return false;
  try {
    return (await inspectBlockDevice(await resolvePath(path))).kind === 'block';
  } catch {
    return false;
  }
}
