/**
 * An ext4 image holding Debian's busybox-static (/bin/busybox and one symlink per applet), made
 * with `mkfs.ext4 -d`, no mounting needed. Used as a container rootfs by the agent tests.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { allOf, need, needs, type Need } from './needs.js';

export const BUSYBOX = '/bin/busybox';

/** Busybox (a static one) and mkfs.ext4 are there. */
export function busyboxRootfsNeed(): Need {
  return allOf(needs.command('mkfs.ext4'), need(existsSync(BUSYBOX), `${BUSYBOX} is missing (apt-get install busybox-static)`));
}

/** Text of /etc/marker in the image, to tell the container's root from the host's. */
export const ROOTFS_MARKER = 'inside the rootfs\n';

/** Writes `<dir>/rootfs.ext4` (64 MiB) and returns its path. */
export function makeBusyboxImage(dir: string): string {
  const tree = join(dir, 'tree');
  for (const sub of ['bin', 'proc', 'dev', 'tmp', 'etc', 'home']) mkdirSync(join(tree, sub), { recursive: true });
  copyFileSync(BUSYBOX, join(tree, 'bin/busybox'));
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((a) => a && a !== 'busybox');
  for (const applet of applets) symlinkSync('busybox', join(tree, 'bin', applet));
  writeFileSync(join(tree, 'etc/marker'), ROOTFS_MARKER);
  const image = join(dir, 'rootfs.ext4');
  execFileSync('truncate', ['-s', '64M', image]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, image]);
  return image;
}
