/**
 * Resolving a container's rootfs before a sandbox or container is created (Kata B8 step 4,
 * B9 step 4): a rootfs that is not host-mounted names a block device or an image file; its
 * path is made absolute and symlink-free, and the device is measured for the VM disk.
 */
import { NodevisorError, invalid } from '../errors.js';
import { inspectBlockDevice, type BlockDeviceInfo } from './blockdev.js';
import { resolvePath } from './paths.js';
import type { RootFs } from './rootfs.js';

export interface ResolvedRootFs {
  /** A copy of the rootfs with `source` resolved (unchanged when it is host-mounted). */
  rootFs: RootFs;
  /** What `source` is, for a rootfs that will be a VM disk. */
  disk?: BlockDeviceInfo;
}

export async function resolveRootFs(rootFs: RootFs): Promise<ResolvedRootFs> {
  if (typeof rootFs !== 'object' || rootFs === null || typeof rootFs.mounted !== 'boolean') {
    throw invalid('rootfs must be an object with a boolean `mounted`');
  }
  const copy: RootFs = { ...rootFs, ...(rootFs.options ? { options: [...rootFs.options] } : {}) };
  if (rootFs.mounted) {
    if (!rootFs.target) throw invalid('a host-mounted rootfs ({ mounted: true }) needs its `target` directory');
    return { rootFs: copy };
  }
  if (!rootFs.source) {
    // Kata lets an unmounted rootfs without source through (the VM then shares nothing); we keep
    // that, with nothing to measure.
    return { rootFs: copy };
  }
  copy.source = await resolvePath(rootFs.source);
  const disk = await inspectBlockDevice(copy.source);
  if (disk.kind === 'other') {
    throw new NodevisorError(`rootfs source ${copy.source} is neither a block device nor an image file`, {
      code: 'EINVAL',
      path: copy.source,
    });
  }
  if (disk.sizeBytes === 0) {
    throw new NodevisorError(`rootfs source ${copy.source} is empty (0 bytes)`, { code: 'EINVAL', path: copy.source });
  }
  return { rootFs: copy, disk };
}
