/**
 * The ELF loader (native/vmm/arch/x86_64/elf_loader.cc) refuses a kernel whose PT_LOAD segments
 * overlap in guest-physical memory (one would silently overwrite the other), and accepts ones
 * that only touch. The probe ELF, with its second segment moved, is the kernel.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { probeGuestPath } from '../../src/guest/probe.js';
import { Vm } from '../../src/vm/vm.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

const PT_LOAD = 1;

/** The probe with its second PT_LOAD segment's physical address set by `place(first)`. */
function probeWithMovedSegment(place: (first: { paddr: bigint; memsz: bigint }) => bigint): string {
  const elf = Buffer.from(readFileSync(probeGuestPath()));
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  const loads = Array.from({ length: phnum }, (_, i) => phoff + i * phentsize).filter((at) => elf.readUInt32LE(at) === PT_LOAD);
  expect(loads.length).toBeGreaterThanOrEqual(2);
  const [first, second] = loads as [number, number];
  const paddr = place({ paddr: elf.readBigUInt64LE(first + 0x18), memsz: elf.readBigUInt64LE(first + 0x28) });
  elf.writeBigUInt64LE(paddr, second + 0x18); // p_paddr
  const path = join(tempDir(), 'probe-moved.elf');
  writeFileSync(path, elf);
  return path;
}

describe('ELF segments', skipUnless('loading ELF kernels into a KVM VM', needs.kvm), () => {
  it('refuses PT_LOAD segments that overlap, naming where', async () => {
    const kernel = probeWithMovedSegment((first) => first.paddr + 0x1000n); // inside the first
    await expect(Vm.create({ kernel, memoryMiB: 64 })).rejects.toMatchObject({
      code: 'EBADELF',
      message: expect.stringMatching(/segments overlap at 0x0*101000/i),
    });
    // The second segment starting one byte before the first ends also overlaps.
    const byOne = probeWithMovedSegment((first) => first.paddr + first.memsz - 1n);
    await expect(Vm.create({ kernel: byOne, memoryMiB: 64 })).rejects.toMatchObject({ code: 'EBADELF' });
  });

  it('accepts segments that touch without overlapping', async () => {
    const kernel = probeWithMovedSegment((first) => first.paddr + first.memsz);
    const vm = await Vm.create({ kernel, memoryMiB: 64 });
    await vm.stop();
  });
});
