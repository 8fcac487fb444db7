/** The initramfs cpio writer, checked with GNU cpio (Debian package cpio) as the reader. */
import { execFileSync } from 'node:child_process';
import { lstatSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { writeCpio, type CpioEntry } from '../../src/guest/image/cpio.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

function sample(): CpioEntry[] {
  // Deliberately unsorted, with odd name and data lengths to exercise the 4-byte padding.
  return [
    { type: 'file', path: '/init', data: Buffer.from('#!/bin/sh\necho init\n'), mode: 0o755 },
    { type: 'dir', path: 'lib' },
    { type: 'file', path: 'lib/modules/virtio_blk.ko', data: Buffer.alloc(4099, 0xab) },
    { type: 'dir', path: 'lib/modules' },
    { type: 'file', path: 'lib/modules/nodevisor.list', data: Buffer.from('/lib/modules/virtio_blk.ko\n') },
    { type: 'dir', path: 'dev' },
    { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { type: 'symlink', path: 'sbin', target: '.' },
    { type: 'file', path: 'empty', data: Buffer.alloc(0) },
  ];
}


describe('writeCpio', () => {
  it('is deterministic: the same entries in any order give the same bytes', () => {
    const a = writeCpio(sample());
    const b = writeCpio(sample().reverse());
    expect(a.equals(b)).toBe(true);
    expect(a.subarray(0, 6).toString()).toBe('070701');
    expect(a.length % 4).toBe(0);
    expect(a.includes(Buffer.from('TRAILER!!!\0'))).toBe(true);
  });

  it('numbers inodes from 1 in path order, with mtime 0 and root ownership', () => {
    const archive = writeCpio(sample());
    const field = (offset: number, index: number) => parseInt(archive.subarray(offset + 6 + index * 8, offset + 14 + index * 8).toString(), 16);
    // First entry is "dev" (sorted), inode 1, a directory.
    expect(field(0, 0)).toBe(1);
    expect(field(0, 1) & 0o170000).toBe(0o040000);
    expect(field(0, 2)).toBe(0); // uid
    expect(field(0, 3)).toBe(0); // gid
    expect(field(0, 5)).toBe(0); // mtime
  });

  it('refuses duplicate and escaping paths', () => {
    expect(() => writeCpio([{ type: 'dir', path: 'a' }, { type: 'dir', path: '/a' }])).toThrow(/duplicate/);
    expect(() => writeCpio([{ type: 'dir', path: 'a/../b' }])).toThrow(/invalid entry path/);
    expect(() => writeCpio([{ type: 'dir', path: '/' }])).toThrow(/invalid entry path/);
  });

  it('lists (cpio -t) what was written, in sorted order', skipUnless('listing a cpio archive', needs.command('cpio')), () => {
    const dir = tempDir();
    const file = join(dir, 'a.cpio');
    writeFileSync(file, writeCpio(sample()));
    const listing = execFileSync('cpio', ['-t', '--quiet', '-F', file], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).toEqual([
      'dev',
      'dev/console',
      'empty',
      'init',
      'lib',
      'lib/modules',
      'lib/modules/nodevisor.list',
      'lib/modules/virtio_blk.ko',
      'sbin',
    ]);
    const verbose = execFileSync('cpio', ['-tv', '--quiet', '-F', file], { encoding: 'utf8' });
    expect(verbose).toMatch(/^crw------- .* 5,\s+1 .* dev\/console$/m);
    expect(verbose).toMatch(/^-rwxr-xr-x .* init$/m);
    expect(verbose).toMatch(/^lrwxrwxrwx .* sbin -> \.$/m);
  });

  it('extracts (cpio -i) to the same contents, modes and link targets', skipUnless('extracting a cpio archive', needs.command('cpio')), () => {
    const dir = tempDir();
    const file = join(dir, 'a.cpio');
    writeFileSync(file, writeCpio(sample()));
    const out = join(dir, 'out');
    execFileSync('sh', ['-c', `mkdir -p '${out}' && cd '${out}' && cpio -i --quiet --make-directories --no-absolute-filenames < '${file}'`]);
    expect(readFileSync(join(out, 'init'), 'utf8')).toBe('#!/bin/sh\necho init\n');
    expect(lstatSync(join(out, 'init')).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(out, 'lib/modules/virtio_blk.ko')).equals(Buffer.alloc(4099, 0xab))).toBe(true);
    expect(readFileSync(join(out, 'empty')).length).toBe(0);
    expect(readlinkSync(join(out, 'sbin'))).toBe('.');
  });
});
