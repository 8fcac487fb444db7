/**
 * The ELF loader (native/vmm/arch/x86_64/elf_loader.cc) refuses a kernel whose PT_LOAD segments
 * overlap in guest-physical memory (one would silently overwrite the other), and accepts ones
 * that only touch. The probe ELF, with its second segment moved, is the kernel.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { PROBE_GENERATION_GPA, probeGuestPath } from '../../src/guest/probe.js';
import { debugReadGuest } from '../../src/testing.js';
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

/** The probe with the address in its generation note (NODEVISOR_NOTE_GENERATION_GPA) set to `gpa`. */
function probeWithGenerationAddress(gpa: bigint): string {
  const elf = Buffer.from(readFileSync(probeGuestPath()));
  // namesz 10, descsz 8, type 2, "nodevisor\0" padded to 12 bytes, then the 8-byte address.
  const header = Buffer.concat([Buffer.from([10, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0]), Buffer.from('nodevisor\0\0\0')]);
  const at = elf.indexOf(header);
  expect(at).toBeGreaterThan(0);
  expect(elf.readBigUInt64LE(at + header.length)).toBe(BigInt(PROBE_GENERATION_GPA));
  elf.writeBigUInt64LE(gpa, at + header.length);
  const path = join(tempDir(), 'probe-generation.elf');
  writeFileSync(path, elf);
  return path;
}

describe('ELF segments', skipUnless('loading ELF kernels into a KVM VM', needs.kvm), () => {
  it('the generation note: the VM writes its generation id at that address; a misaligned or outside-RAM one is refused', async () => {
    const vm = await Vm.create({ kernel: probeGuestPath(), memoryMiB: 16 });
    try {
      expect(debugReadGuest(vm, PROBE_GENERATION_GPA, 8).readBigUInt64LE(0)).toBe(BigInt(`0x${vm.generation}`));
    } finally {
      await vm.stop();
    }
    await expect(Vm.create({ kernel: probeWithGenerationAddress(0x5004n), memoryMiB: 16 })).rejects.toMatchObject({
      code: 'EBADELF',
      message: expect.stringContaining('generation address 0x5004 is not an aligned address in guest RAM'),
    });
    await expect(Vm.create({ kernel: probeWithGenerationAddress(16n << 20n), memoryMiB: 16 })).rejects.toMatchObject({
      code: 'EBADELF',
      message: expect.stringContaining('generation address 0x1000000 is not'),
    });
  });

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
