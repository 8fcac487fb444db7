/**
 * A kernel tree made by the test, for `nodevisor guest build --kernel --modules` without Debian:
 * a vmlinuz placeholder and minimal ELF64 relocatables with a .modinfo section (virtio_console
 * compressed as .ko.xz when `xz` is asked for).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { tempDir } from './tmp.js';

export function fakeKernelTree(options: { xz?: boolean } = {}): { root: string; modules: string; console: Buffer } {
  const root = tempDir();
  const modules = join(root, 'lib/modules/9.9.9-test');
  mkdirSync(join(modules, 'kernel/drivers'), { recursive: true });
  writeFileSync(join(root, 'vmlinuz'), 'not really a kernel');
  writeFileSync(join(modules, 'kernel/drivers/base_mod.ko'), fakeModule('base_mod', ''));
  writeFileSync(join(modules, 'kernel/drivers/virtio_mmio.ko'), fakeModule('virtio_mmio', 'base-mod'));
  writeFileSync(join(modules, 'kernel/drivers/virtio_blk.ko'), fakeModule('virtio_blk', 'base_mod'));
  const console = fakeModule('virtio_console', '');
  writeFileSync(join(modules, 'kernel/drivers/virtio_console.ko'), console);
  if (options.xz !== false) execFileSync('xz', ['-z', join(modules, 'kernel/drivers/virtio_console.ko')]);
  writeFileSync(join(modules, 'modules.builtin'), 'kernel/fs/ext4/ext4.ko\n');
  return { root, modules, console };
}

/** An ELF64 LE file with sections: null, .modinfo, .shstrtab. */
export function fakeModule(name: string, depends: string): Buffer {
  const modinfo = Buffer.from(`license=GPL\0depends=${depends}\0name=${name}\0`);
  const shstrtab = Buffer.from('\0.modinfo\0.shstrtab\0');
  const header = Buffer.alloc(64);
  header.writeUInt32BE(0x7f454c46, 0);
  header[4] = 2; // ELF64
  header[5] = 1; // little-endian
  header[6] = 1;
  header.writeUInt16LE(1, 16); // ET_REL
  header.writeUInt16LE(62, 18); // x86-64
  const modinfoOff = 64;
  const shstrOff = modinfoOff + modinfo.length;
  const shoff = shstrOff + shstrtab.length;
  header.writeBigUInt64LE(BigInt(shoff), 0x28);
  header.writeUInt16LE(64, 0x34);
  header.writeUInt16LE(64, 0x3a);
  header.writeUInt16LE(3, 0x3c);
  header.writeUInt16LE(2, 0x3e);
  const section = (nameOff: number, type: number, off: number, size: number) => {
    const s = Buffer.alloc(64);
    s.writeUInt32LE(nameOff, 0);
    s.writeUInt32LE(type, 4);
    s.writeBigUInt64LE(BigInt(off), 0x18);
    s.writeBigUInt64LE(BigInt(size), 0x20);
    return s;
  };
  return Buffer.concat([
    header,
    modinfo,
    shstrtab,
    section(0, 0, 0, 0),
    section(1, 1, modinfoOff, modinfo.length),
    section(10, 3, shstrOff, shstrtab.length),
  ]);
}
