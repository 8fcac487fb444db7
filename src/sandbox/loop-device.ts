/**
 * Loop devices a sandbox owns: an image file made a block device for an agent that mounts
 * block devices (namespaces mode). util-linux's `losetup` does the work in a child process, so
 * the event loop never waits on the kernel; `--find --show` picks and binds a free device in one
 * step (LOOP_CTL_GET_FREE + LOOP_CONFIGURE), without a race against other users.
 *
 * Detaching a device that is still mounted (LOOP_CLR_FD with other openers) only marks it
 * autoclear: the kernel frees it when the last mount goes. The namespaces backend detaches
 * right after the agent mounted it, so a crash of this process leaves no loop device behind.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { NodevisorError } from '../errors.js';
import { logger } from '../log/logger.js';

const run = promisify(execFile);

/** Binds `image` to a free loop device (read-only when asked) and resolves its path. */
export async function attachLoopDevice(image: string, readOnly: boolean): Promise<string> {
  const args = ['--find', '--show', ...(readOnly ? ['--read-only'] : []), image];
  try {
    const { stdout } = await run('losetup', args);
    const device = stdout.trim();
    if (!/^\/dev\/loop\d+$/.test(device)) throw new Error(`losetup printed ${JSON.stringify(device)}`);
    logger('sandbox').debug({ image, device, readOnly }, 'loop device attached');
    return device;
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: unknown };
    const code = e.code === 'ENOENT' ? 'ENOENT' : 'ELOOP_ATTACH';
    const why = e.code === 'ENOENT' ? 'losetup is not installed (apt-get install mount)' : (e.stderr?.trim() || e.message);
    throw new NodevisorError(`cannot attach ${image} to a loop device: ${why}`, { code, path: image, cause: err });
  }
}

/** Detaches a loop device this sandbox attached. A device already gone is not an error. */
export async function detachLoopDevice(device: string): Promise<void> {
  try {
    await run('losetup', ['--detach', device]);
    logger('sandbox').debug({ device }, 'loop device detached');
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    if (/No such device or address|No such file/.test(stderr)) return;
    throw new NodevisorError(`cannot detach loop device ${device}: ${stderr.trim() || (err as Error).message}`, {
      code: 'ELOOP_DETACH',
      path: device,
      cause: err,
    });
  }
}
