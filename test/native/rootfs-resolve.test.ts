/**
 * Tier 2 (root): a rootfs source resolved and measured through the addon: an ext4 image on a
 * loop device reached through a symlink, an image file, and what is refused.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isBlockDevice } from '../../src/rootfs/paths.js';
import { resolveRootFs } from '../../src/rootfs/resolve.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';


const canRun = skipUnless('rootfs resolution on loop devices', needs.root, needs.command('losetup'), needs.command('mkfs.ext4'));

describe('resolveRootFs and isBlockDevice (root, loop devices)', canRun, () => {
  let dir = '';
  let image = '';
  let loop = '';

  beforeAll(() => {
    dir = tempDir();
    image = join(dir, 'rootfs.ext4');
    writeFileSync(image, '');
    truncateSync(image, 16 * 1024 * 1024);
    execFileSync('mkfs.ext4', ['-q', '-F', image]);
    loop = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
  });

  afterAll(() => {
    if (loop) execFileSync('losetup', ['-d', loop]);
  });

  it('resolves a symlink to a loop device and measures it', async () => {
    const link = join(dir, 'disk-link');
    symlinkSync(loop, link);
    const { rootFs, disk } = await resolveRootFs({ source: link, type: 'ext4', options: ['noatime'], mounted: false });
    expect(rootFs).toEqual({ source: loop, type: 'ext4', options: ['noatime'], mounted: false });
    expect(disk).toMatchObject({ kind: 'block', sizeBytes: 16 * 1024 * 1024, readOnly: false });
    expect(await isBlockDevice(link)).toBe(true);
    expect(await isBlockDevice(image)).toBe(false);
  });

  it('accepts an image file', async () => {
    const { disk } = await resolveRootFs({ source: image, type: 'ext4', mounted: false });
    expect(disk).toMatchObject({ kind: 'file', sizeBytes: 16 * 1024 * 1024 });
  });

  it('refuses a directory, an empty file and a missing source with errors naming them', async () => {
    const sub = join(dir, 'a-dir');
    mkdirSync(sub);
    await expect(resolveRootFs({ source: sub, mounted: false })).rejects.toThrow(`rootfs source ${sub} is neither a block device nor an image file`);
    const empty = join(dir, 'empty.img');
    writeFileSync(empty, '');
    await expect(resolveRootFs({ source: empty, mounted: false })).rejects.toThrow(/is empty/);
    await expect(resolveRootFs({ source: join(dir, 'nope'), mounted: false })).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('leaves a host-mounted rootfs alone but needs its target', async () => {
    expect((await resolveRootFs({ target: dir, mounted: true })).rootFs).toEqual({ target: dir, mounted: true });
    await expect(resolveRootFs({ mounted: true })).rejects.toThrow(/needs its `target`/);
  });
});
