/**
 * Reads a kernel module's `.modinfo` section (NUL-separated `key=value` strings such as
 * `name=virtio_blk` and `depends=virtio,virtio_ring`) straight from the ELF file, so resolving
 * dependencies needs neither modinfo nor a depmod-generated modules.dep. Pure; JS thread.
 * The input is a file from a package, so every offset is bounds-checked.
 */
import { NodevisorError } from '../../errors.js';

export interface ModInfo {
  /** The module's name (from `name=`, else the caller's guess). */
  name?: string;
  /** Names of the modules it needs loaded first (from `depends=`). */
  depends: string[];
}

function bad(what: string): never {
  throw new NodevisorError(`not a valid kernel module (ELF64): ${what}`, { code: 'EINVAL' });
}

/** The `.modinfo` strings of an uncompressed 64-bit little-endian ELF relocatable. */
export function readModInfo(elf: Buffer): ModInfo {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) bad('no ELF magic');
  if (elf[4] !== 2 || elf[5] !== 1) bad('not ELF64 little-endian');
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  if (shentsize < 64 || shstrndx >= shnum || shoff + shnum * shentsize > elf.length) bad('section headers out of range');
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    const offset = Number(elf.readBigUInt64LE(at + 0x18));
    const size = Number(elf.readBigUInt64LE(at + 0x20));
    if (offset + size > elf.length) bad(`section ${i} out of range`);
    return { nameOffset: elf.readUInt32LE(at), offset, size };
  };
  const names = section(shstrndx);
  const nameOf = (off: number) => {
    const start = names.offset + off;
    if (off >= names.size) bad('section name out of range');
    const end = elf.indexOf(0, start);
    return elf.toString('latin1', start, end < 0 || end > names.offset + names.size ? names.offset + names.size : end);
  };
  const info: ModInfo = { depends: [] };
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (nameOf(s.nameOffset) !== '.modinfo') continue;
    for (const entry of elf.toString('utf8', s.offset, s.offset + s.size).split('\0')) {
      const eq = entry.indexOf('=');
      if (eq < 0) continue;
      const key = entry.slice(0, eq);
      const value = entry.slice(eq + 1);
      if (key === 'name') info.name = value;
      if (key === 'depends' && value) info.depends = value.split(',').filter(Boolean).map(normalizeModuleName);
    }
    return info;
  }
  return info;
}

/** Kernel module names treat '-' and '_' as the same; the canonical form uses '_'. */
export function normalizeModuleName(name: string): string {
  return name.replace(/-/g, '_');
}
