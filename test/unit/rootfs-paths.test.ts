import { mkdirSync, readdirSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

import { NodevisorError } from '../../src/errors.js';
import { isBlockDevice, resolvePath } from '../../src/rootfs/paths.js';
import { need, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

describe('resolvePath', () => {
  it('resolves a chain of real symlinks, relative ones included', async () => {
    const dir = realpathSync(tempDir());
    mkdirSync(join(dir, 'real'));
    writeFileSync(join(dir, 'real', 'disk.img'), 'x');
    symlinkSync(join(dir, 'real'), join(dir, 'dirlink'));
    symlinkSync('dirlink/disk.img', join(dir, 'link1'));
    symlinkSync(join(dir, 'link1'), join(dir, 'link2'));
    expect(await resolvePath(join(dir, 'link2'))).toBe(join(dir, 'real', 'disk.img'));
  });

  it('makes a relative path absolute against the working directory', async () => {
    const dir = realpathSync(tempDir());
    writeFileSync(join(dir, 'f'), '');
    expect(await resolvePath(relative(process.cwd(), join(dir, 'f')))).toBe(join(dir, 'f'));
  });

  it('rejects an empty path', async () => {
    await expect(resolvePath('')).rejects.toThrow('path must be specified');
  });

  it('says which absolute file does not exist', async () => {
    const dir = realpathSync(tempDir());
    await expect(resolvePath(join(dir, 'nope'))).rejects.toMatchObject({
      code: 'ENOENT',
      message: `file ${join(dir, 'nope')} does not exist`,
    });
  });

  it('reports a dangling symlink as a missing file', async () => {
    const dir = realpathSync(tempDir());
    symlinkSync(join(dir, 'gone'), join(dir, 'dangling'));
    await expect(resolvePath(join(dir, 'dangling'))).rejects.toThrow(`file ${join(dir, 'dangling')} does not exist`);
  });

  it('reports a symlink loop with its own code', async () => {
    const dir = realpathSync(tempDir());
    symlinkSync(join(dir, 'b'), join(dir, 'a'));
    symlinkSync(join(dir, 'a'), join(dir, 'b'));
    const err = await resolvePath(join(dir, 'a')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodevisorError);
    expect((err as NodevisorError).code).toBe('ELOOP');
  });
});

describe('isBlockDevice', () => {
  it('is false for an empty path, a file, a directory, a char device and a missing path', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'f'), '');
    expect(await isBlockDevice('')).toBe(false);
    expect(await isBlockDevice(join(dir, 'f'))).toBe(false);
    expect(await isBlockDevice(dir)).toBe(false);
    expect(await isBlockDevice('/dev/null')).toBe(false);
    expect(await isBlockDevice(join(dir, 'missing'))).toBe(false);
  });

  const blockDevice = readdirSync('/dev')
    .map((n) => join('/dev', n))
    .find((p) => {
      try {
        return statSync(p).isBlockDevice();
      } catch {
        return false;
      }
    });
  const haveBlockDevice = blockDevice !== undefined;

  it('follows a symlink to a block device', skipUnless('symlink to a block device', need(haveBlockDevice, 'no block device under /dev')), async () => {
    const dir = tempDir();
    symlinkSync(blockDevice!, join(dir, 'disk'));
    expect(await isBlockDevice(blockDevice!)).toBe(true);
    expect(await isBlockDevice(join(dir, 'disk'))).toBe(true);
  });
});
