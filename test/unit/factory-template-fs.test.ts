/**
 * The template's tmpfs (Kata B32 prepareTemplateFiles / close) for real: mounted with
 * nosuid,nodev and size=<memory+8>M, refused over an existing mount, unmounted (lazily when a
 * clone still holds a file) and removed. Needs root (a real mount).
 */
import { existsSync } from 'node:fs';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';

import { tmpfsStateFs } from '../../src/factory/tmpfs.js';
import { mountAt, readMountInfo } from '../../src/util/mountinfo.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

const mounted: string[] = [];

afterEach(() => {
  for (const path of mounted.splice(0)) {
    while (mountAt(readMountInfo(), path)) execFileSync('umount', ['--lazy', path]);
  }
});

describe('template tmpfs (B32)', skipUnless('template tmpfs mount and unmount', needs.root), () => {
  it('mounts a tmpfs sized as asked, nosuid and nodev, mode 0700; remove unmounts it and deletes the directory', async () => {
    const path = join(tempDir('nodevisor-tmpfs-'), 'factory', 'template');
    mounted.push(path);
    await tmpfsStateFs.prepare(path, 72);
    const mount = mountAt(readMountInfo(), path);
    expect(mount).toMatchObject({ fsType: 'tmpfs' });
    expect(mount!.mountOptions).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    expect(mount!.superOptions).toEqual(expect.arrayContaining([`size=${72 * 1024}k`, 'mode=700']));
    await writeFile(join(path, 'memory'), Buffer.alloc(4096, 1));
    await tmpfsStateFs.remove(path);
    expect(mountAt(readMountInfo(), path)).toBeUndefined();
    expect(existsSync(path)).toBe(false);
  });

  it('refuses a path that already has a mount, and leaves that mount alone', async () => {
    const path = join(tempDir('nodevisor-tmpfs-'), 'template');
    mounted.push(path);
    await tmpfsStateFs.prepare(path, 16);
    await writeFile(join(path, 'mine'), 'x');
    await expect(tmpfsStateFs.prepare(path, 16)).rejects.toMatchObject({ code: 'EBUSY', message: `a filesystem is already mounted on ${path}` });
    expect(readMountInfo().filter((m) => m.mountPoint === path)).toHaveLength(1);
    expect(existsSync(join(path, 'mine'))).toBe(true);
    await tmpfsStateFs.remove(path);
  });

  it('unmounts lazily while a clone still holds the memory file', async () => {
    const path = join(tempDir('nodevisor-tmpfs-'), 'template');
    mounted.push(path);
    await tmpfsStateFs.prepare(path, 16);
    const held = await open(join(path, 'memory'), 'w+');
    try {
      await held.write(Buffer.from('still mapped'));
      await tmpfsStateFs.remove(path);
      expect(mountAt(readMountInfo(), path)).toBeUndefined();
      expect(existsSync(path)).toBe(false);
      const back = Buffer.alloc(12);
      await held.read(back, 0, 12, 0);
      expect(back.toString()).toBe('still mapped');
    } finally {
      await held.close();
    }
  });

  it('remove takes a plain directory (no mount) and a missing path without complaint', async () => {
    const path = join(tempDir('nodevisor-tmpfs-'), 'template');
    await mkdir(path);
    await writeFile(join(path, 'state'), 'x');
    await tmpfsStateFs.remove(path);
    expect(existsSync(path)).toBe(false);
    await expect(tmpfsStateFs.remove(path)).resolves.toBeUndefined();
  });

  it('a failed mount leaves no directory behind', async () => {
    const parent = tempDir('nodevisor-tmpfs-');
    const path = join(parent, 'made', 'template');
    await expect(tmpfsStateFs.prepare(path, -5)).rejects.toMatchObject({ code: 'EMOUNT', message: expect.stringMatching(/^mount -t tmpfs .* failed: /) });
    expect(existsSync(join(parent, 'made'))).toBe(false);
  });
});
