/** src/util/atomic-write.ts on real files: replaced whole, and no staging file left on failure. */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { copyFileAtomic, writeFileAtomic } from '../../src/util/atomic-write.js';
import { tempDir } from '../helpers/tmp.js';

describe('writeFileAtomic / copyFileAtomic', () => {
  it('creates, then replaces a file, leaving only the file', async () => {
    const dir = tempDir();
    const path = join(dir, 'initramfs.cpio');
    await writeFileAtomic(path, 'first');
    await writeFileAtomic(path, Buffer.from('second'));
    expect(readFileSync(path, 'utf8')).toBe('second');
    const source = join(dir, 'source');
    writeFileSync(source, 'copied');
    await copyFileAtomic(source, path);
    expect(readFileSync(path, 'utf8')).toBe('copied');
    expect(readdirSync(dir).sort()).toEqual(['initramfs.cpio', 'source']);
  });

  it('concurrent writers of one path each leave a whole file and no staging file', async () => {
    const dir = tempDir();
    const path = join(dir, 'vmlinux');
    const contents = ['a', 'b', 'c', 'd'].map((c) => c.repeat(256 * 1024));
    await Promise.all(contents.map((c) => writeFileAtomic(path, c)));
    expect(contents).toContain(readFileSync(path, 'utf8'));
    expect(readdirSync(dir)).toEqual(['vmlinux']);
  });

  it('fails with the rename error and removes its staging file', async () => {
    const dir = tempDir();
    const path = join(dir, 'taken');
    mkdirSync(join(path, 'child'), { recursive: true }); // a non-empty directory: rename over it fails
    await expect(writeFileAtomic(path, 'x')).rejects.toMatchObject({ code: expect.stringMatching(/^(EISDIR|ENOTEMPTY|EEXIST)$/) });
    expect(readdirSync(dir)).toEqual(['taken']);
  });

  it('fails when the source is missing, and leaves nothing', async () => {
    const dir = tempDir();
    await expect(copyFileAtomic(join(dir, 'missing'), join(dir, 'out'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(readdirSync(dir)).toEqual([]);
  });
});
