/**
 * `inspectBlockDevice(path)`: what a host path is as a VM disk — a block device (its size,
 * logical block size, read-only flag, device-mapper or not), a regular file (an image: its
 * size) or something else. The stat and ioctls run on a libuv worker thread
 * (native/sys/blockdev.cc), so a slow device never blocks the event loop.
 */
import { invalid } from '../errors.js';
import { addon, type BlockDeviceInfo } from '../native/binding.js';

export type { BlockDeviceInfo } from '../native/binding.js';

/**
 * Symlinks are followed (/dev/mapper/x → /dev/dm-N). Rejects with a NodevisorError carrying
 * `code` (ENOENT for a missing path), `errno`, `syscall` and `path`.
 */
export async function inspectBlockDevice(path: string): Promise<BlockDeviceInfo> {
  if (typeof path !== 'string' || path === '') throw invalid('inspectBlockDevice: path must be a non-empty string');
  return addon().inspectBlockDevice(path);
}
