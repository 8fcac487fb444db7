/**
 * Does an ELF kernel carry a Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY = 18, owner "Xen")?
 * nodevisor's VMM boots an ELF only through that entry; a vmlinux without it (a kernel built
 * without CONFIG_PVH) must boot as a bzImage instead. Pure function over the file's bytes,
 * bounds-checked: a malformed ELF answers with the reason, never throws a RangeError.
 */
const XEN_ELFNOTE_PHYS32_ENTRY = 18;
const PT_NOTE = 4;

export type PvhNote = { entry: number } | { missing: string };

export function findPvhNote(elf: Buffer): PvhNote {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) return { missing: 'not an ELF file' };
  if (elf[4] !== 2 || elf[5] !== 1) return { missing: 'not a little-endian ELF64 file' };
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  if (phentsize < 56 || phoff + phnum * phentsize > elf.length) return { missing: 'the program header table is outside the file' };
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (elf.readUInt32LE(ph) !== PT_NOTE) continue;
    const offset = Number(elf.readBigUInt64LE(ph + 8));
    const size = Number(elf.readBigUInt64LE(ph + 32));
    if (offset + size > elf.length) return { missing: 'a PT_NOTE segment is outside the file' };
    let pos = offset;
    while (pos + 12 <= offset + size) {
      const namesz = elf.readUInt32LE(pos);
      const descsz = elf.readUInt32LE(pos + 4);
      const type = elf.readUInt32LE(pos + 8);
      const name = pos + 12;
      // Rounded up to 4 in floating point, not with `& ~3`: that is 32-bit signed arithmetic in
      // JS, and a huge namesz/descsz would go negative instead of running past the segment.
      const desc = name + Math.ceil(namesz / 4) * 4;
      const next = desc + Math.ceil(descsz / 4) * 4;
      if (next > offset + size) break;
      if (namesz === 4 && elf.toString('latin1', name, name + 3) === 'Xen' && type === XEN_ELFNOTE_PHYS32_ENTRY) {
        if (descsz === 4) return { entry: elf.readUInt32LE(desc) };
        if (descsz === 8) return { entry: Number(elf.readBigUInt64LE(desc)) };
      }
      pos = next;
    }
  }
  return { missing: 'no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); the kernel was built without CONFIG_PVH' };
}
