import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { probeGuestPath } from '../../src/guest/probe.js';
import { findPvhNote } from '../../src/guest/kernel/pvh-note.js';

/** A minimal little-endian ELF64 with one PT_NOTE segment holding `note`. */
function elfWithNote(note: Buffer): Buffer {
  const phoff = 64;
  const noteOffset = phoff + 56;
  const elf = Buffer.alloc(noteOffset + note.length);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 2; // ELFCLASS64
  elf[5] = 1; // little-endian
  elf.writeBigUInt64LE(BigInt(phoff), 0x20);
  elf.writeUInt16LE(56, 0x36);
  elf.writeUInt16LE(1, 0x38);
  elf.writeUInt32LE(4, phoff); // PT_NOTE
  elf.writeBigUInt64LE(BigInt(noteOffset), phoff + 8);
  elf.writeBigUInt64LE(BigInt(note.length), phoff + 32);
  note.copy(elf, noteOffset);
  return elf;
}

function note(namesz: number, descsz: number, type: number, name: string, desc: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt32LE(namesz, 0);
  head.writeUInt32LE(descsz, 4);
  head.writeUInt32LE(type, 8);
  const n = Buffer.alloc(Math.ceil(name.length / 4) * 4);
  n.write(name, 'latin1');
  return Buffer.concat([head, n, desc]);
}

describe('findPvhNote', () => {
  it('finds the entry of the bundled probe guest', () => {
    const found = findPvhNote(readFileSync(probeGuestPath()));
    expect('entry' in found && found.entry).toBeGreaterThanOrEqual(0x100000);
  });

  it('reads a 4-byte Xen PHYS32_ENTRY note', () => {
    const desc = Buffer.alloc(4);
    desc.writeUInt32LE(0x1000000);
    expect(findPvhNote(elfWithNote(note(4, 4, 18, 'Xen\0', desc)))).toEqual({ entry: 0x1000000 });
  });

  it('answers with a reason, never throws, for hostile sizes', () => {
    for (const namesz of [0x7ffffffe, 0xfffffffc, 0xffffffff]) {
      expect(findPvhNote(elfWithNote(note(namesz, 4, 18, 'Xen\0', Buffer.alloc(4))))).toHaveProperty('missing');
    }
    expect(findPvhNote(elfWithNote(note(4, 0xfffffffd, 18, 'Xen\0', Buffer.alloc(4))))).toHaveProperty('missing');
    expect(findPvhNote(Buffer.from('not an elf'))).toEqual({ missing: 'not an ELF file' });
  });
});
