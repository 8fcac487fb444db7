/**
 * Tier 2 (root): inspectBlockDevice on real loop devices (ext4 image, read-only, 4 KiB
 * sectors), a device-mapper device where the kernel has device-mapper, regular files (one on
 * a read-only mount), a directory, a FIFO and a missing path.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { NodevisorError } from '../../src/errors.js';
import { inspectBlockDevice } from '../../src/rootfs/blockdev.js';
import { need, needs, skipUnless, type Need } from '../helpers/needs.js';

const IMAGE_BYTES = 32 * 1024 * 1024;

function run(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

const canRun = skipUnless(
  'block device tests (loop devices, mounts)',
  needs.root,
  needs.command('losetup'),
  needs.command('mkfs.ext4'),
  need(existsSync('/dev/loop-control'), '/dev/loop-control is missing (no loop driver)'),
);

/** device-mapper works when the userspace tool is there and the kernel driver answers. */
function deviceMapper(): Need {
  const tool = needs.command('dmsetup');
  if (!tool.ok) return tool;
  try {
    execFileSync('dmsetup', ['version'], { stdio: 'ignore' });
    return need(true, '');
  } catch {
    return need(false, 'dmsetup cannot talk to the kernel device-mapper driver (dm_mod not loaded or not in this kernel)');
  }
}

describe('inspectBlockDevice (root)', canRun, () => {
  let dir = '';
  let image = '';
  const loops: string[] = [];
  const dmNames: string[] = [];
  const mounts: string[] = [];

  /** Attaches `image` to a free loop device; detached after each test. */
  function loop(...flags: string[]): string {
    const dev = run('losetup', '-f', '--show', ...flags, image);
    loops.push(dev);
    return dev;
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nodevisor-blockdev-'));
    image = join(dir, 'rootfs.ext4');
    writeFileSync(image, '');
    execFileSync('truncate', ['-s', String(IMAGE_BYTES), image]);
    run('mkfs.ext4', '-q', '-F', image);
  });

  afterEach(() => {
    for (const name of dmNames.splice(0).reverse()) {
      try {
        run('dmsetup', 'remove', name);
      } catch (err) {
        console.warn(`cleanup: dmsetup remove ${name}: ${(err as Error).message}`);
      }
    }
    for (const dev of loops.splice(0).reverse()) {
      try {
        run('losetup', '-d', dev);
      } catch (err) {
        console.warn(`cleanup: losetup -d ${dev}: ${(err as Error).message}`);
      }
    }
    for (const target of mounts.splice(0).reverse()) {
      try {
        run('umount', target);
      } catch (err) {
        console.warn(`cleanup: umount ${target}: ${(err as Error).message}`);
      }
    }
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a loop device holding an ext4 image: block, its size and sector size, writable', async () => {
    const dev = loop();
    expect(run('blkid', '-o', 'value', '-s', 'TYPE', dev)).toBe('ext4');
    const st = statSync(dev);
    const info = await inspectBlockDevice(dev);
    expect(info).toEqual({
      kind: 'block',
      major: 7,
      minor: st.rdev & 0xff | ((st.rdev >> 12) & ~0xff),
      sizeBytes: IMAGE_BYTES,
      logicalBlockSize: 512,
      readOnly: false,
      deviceMapper: false,
    });
    // The kernel's own view, through another tool.
    expect(info.sizeBytes).toBe(Number(run('blockdev', '--getsize64', dev)));
  });

  it('follows a symlink to the device (as /dev/mapper/x and /dev/disk/by-* are)', async () => {
    const dev = loop();
    const link = join(dir, 'disk-link');
    rmSync(link, { force: true });
    symlinkSync(dev, link);
    const info = await inspectBlockDevice(link);
    expect(info.kind).toBe('block');
    expect(info.sizeBytes).toBe(IMAGE_BYTES);
  });

  it('a read-only loop device (losetup -r) is readOnly', async () => {
    const dev = loop('-r');
    const info = await inspectBlockDevice(dev);
    expect(info).toMatchObject({ kind: 'block', readOnly: true, sizeBytes: IMAGE_BYTES });
    expect(run('blockdev', '--getro', dev)).toBe('1');
  });

  it('a loop device with 4096-byte sectors reports logicalBlockSize 4096', async () => {
    const dev = loop('-b', '4096');
    const info = await inspectBlockDevice(dev);
    expect(info.logicalBlockSize).toBe(4096);
    expect(info.logicalBlockSize).toBe(Number(run('blockdev', '--getss', dev)));
  });

  it('a device-mapper linear device is deviceMapper', skipUnless('device-mapper inspect test', deviceMapper()), async () => {
    const dev = loop();
    const name = `nodevisor-test-${process.pid}`;
    const sectors = IMAGE_BYTES / 512;
    run('dmsetup', 'create', name, '--table', `0 ${sectors} linear ${dev} 0`);
    dmNames.push(name);
    const [major, minor] = run('dmsetup', 'info', '-c', '--noheadings', '-o', 'major,minor', name).split(':').map(Number);
    // /dev/mapper/<name> is made by udev or by libdevmapper itself; fall back to /dev/dm-N.
    const path = existsSync(`/dev/mapper/${name}`) ? `/dev/mapper/${name}` : `/dev/dm-${minor}`;
    const info = await inspectBlockDevice(path);
    expect(info).toMatchObject({ kind: 'block', major, minor, sizeBytes: IMAGE_BYTES, deviceMapper: true });
    expect((await inspectBlockDevice(dev)).deviceMapper).toBe(false);
  });

  it('a regular file: its size, 512-byte blocks, writable, no device number', async () => {
    const file = join(dir, 'image.raw');
    writeFileSync(file, Buffer.alloc(12345, 1));
    await expect(inspectBlockDevice(file)).resolves.toEqual({
      kind: 'file',
      major: 0,
      minor: 0,
      sizeBytes: 12345,
      logicalBlockSize: 512,
      readOnly: false,
      deviceMapper: false,
    });
    expect((await inspectBlockDevice(image)).sizeBytes).toBe(IMAGE_BYTES);
  });

  it('a regular file on a read-only mount is readOnly', async () => {
    const mnt = join(dir, 'ro-mount');
    mkdirSync(mnt, { recursive: true });
    run('mount', '-t', 'tmpfs', '-o', 'size=1m', 'nodevisor-test', mnt);
    mounts.push(mnt);
    const file = join(mnt, 'image.raw');
    writeFileSync(file, 'abc');
    expect((await inspectBlockDevice(file)).readOnly).toBe(false);
    run('mount', '-o', 'remount,ro', mnt);
    await expect(inspectBlockDevice(file)).resolves.toMatchObject({ kind: 'file', sizeBytes: 3, readOnly: true });
  });

  it('a directory, a FIFO and a character device are "other" (and the FIFO does not block)', async () => {
    expect((await inspectBlockDevice(dir)).kind).toBe('other');
    const fifo = join(dir, 'fifo');
    rmSync(fifo, { force: true });
    run('mkfifo', fifo);
    await expect(inspectBlockDevice(fifo)).resolves.toMatchObject({ kind: 'other', sizeBytes: 0, major: 0 });
    await expect(inspectBlockDevice('/dev/null')).resolves.toMatchObject({ kind: 'other', logicalBlockSize: 0 });
  });

  it('a missing path: NodevisorError ENOENT with errno, syscall and path', async () => {
    const missing = join(dir, 'no-such-disk');
    const err = await inspectBlockDevice(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodevisorError);
    expect(err).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'open', path: missing });
    expect((err as Error).message).toContain(missing);
  });
});

describe('errors raised off the JS thread', () => {
  it("keep the caller's JS stack: a rejection from a libuv worker names the calling file", async () => {
    const missing = join(tmpdir(), `nodevisor-no-such-disk-${process.pid}`);
    const err = await inspectBlockDevice(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodevisorError);
    const stack = (err as Error).stack ?? '';
    // Its own header first (the message), then the frames of the call that asked for the work.
    expect(stack.split('\n')[0]).toContain((err as Error).message.split('\n')[0]);
    expect(stack).toMatch(/\n {4}at .*src\/rootfs\/blockdev\.ts/);
    expect(stack).toMatch(/\n {4}at .*test\/native\/blockdev\.test\.ts/);
  });
});
