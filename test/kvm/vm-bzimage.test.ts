/**
 * Tier 3: the Linux 64-bit boot protocol (native/vmm/arch/x86_64/bzimage.cc) with a synthetic
 * bzImage: a setup header a real kernel would have, and a 64-bit "kernel" of a few
 * instructions at load address + 0x200 that reports %rsi (the boot_params address) on the
 * phase port, then parks on the wait port. The zero page is then read back from guest memory. A real Debian kernel boots in
 * test/linux/linux-boot.test.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { debugReadGuest } from '../../src/testing.js';
import { Vm, type VmExit, type VmPhase } from '../../src/vm/vm.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

const SETUP_SECTS = 1;
const SETUP_BYTES = (SETUP_SECTS + 1) * 512;
const ZERO_PAGE = 0x8000;
const CMDLINE_ADDRESS = 0x20000;

// mov %rsi,%rax; shr $8,%rax; out %al,$0x80; 1: mov $0x504,%dx; in %dx,%eax; jmp 1b
const REPORT_RSI = [0x48, 0x89, 0xf0, 0x48, 0xc1, 0xe8, 0x08, 0xe6, 0x80, 0x66, 0xba, 0x04, 0x05, 0xed, 0xeb, 0xf9];

interface HeaderOverrides {
  version?: number;
  xloadflags?: number;
  magic?: string;
  truncateTo?: number;
}

function syntheticBzImage(o: HeaderOverrides = {}): Buffer {
  const kernel = Buffer.alloc(0x1000);
  Buffer.from(REPORT_RSI).copy(kernel, 0x200); // the 64-bit entry is load address + 0x200
  const image = Buffer.concat([Buffer.alloc(SETUP_BYTES), kernel]);
  image[0x1f1] = SETUP_SECTS;
  image.writeUInt32LE(kernel.length / 16, 0x1f4); // syssize, in 16-byte units
  image.writeUInt16LE(0xaa55, 0x1fe);
  image[0x200] = 0xeb; // jmp short over the header...
  image[0x201] = 0x268 - 0x202; // ...whose length this byte gives
  image.write(o.magic ?? 'HdrS', 0x202, 'latin1');
  image.writeUInt16LE(o.version ?? 0x020f, 0x206);
  image[0x211] = 0x01; // loadflags: LOADED_HIGH
  image.writeUInt32LE(0x37ffffff, 0x22c); // initrd_addr_max
  image.writeUInt32LE(0x200000, 0x230); // kernel_alignment
  image[0x234] = 1; // relocatable
  image.writeUInt16LE(o.xloadflags ?? 0x1, 0x236); // XLF_KERNEL_64
  image.writeUInt32LE(2048, 0x238); // cmdline_size
  image.writeBigUInt64LE(0x1000000n, 0x258); // pref_address
  image.writeUInt32LE(0x200000, 0x260); // init_size
  return o.truncateTo === undefined ? image : image.subarray(0, o.truncateTo);
}

function firstPhase(vm: Vm): Promise<VmPhase | VmExit> {
  return new Promise((resolve) => {
    vm.once('phase', resolve);
    vm.once('exit', resolve);
  });
}

describe('bzImage boot (Linux 64-bit boot protocol)', skipUnless('boot a synthetic bzImage', needs.kvm), () => {
  const dir = tempDir('nodevisor-bzimage-');
  const write = (name: string, data: Buffer): string => {
    const path = join(dir, name);
    writeFileSync(path, data);
    return path;
  };

  it('enters at load address + 0x200 in 64-bit mode with %rsi = boot_params, which carries the header, cmdline, initrd and e820', async () => {
    const cmdline = `console=ttyS0 nodevisor.test=${Math.random().toString(36).slice(2)}`;
    const initrd = Buffer.alloc(5000, 0x5a);
    const vm = await Vm.create({
      kernel: write('bzImage', syntheticBzImage()),
      initrd: write('initrd', initrd),
      cmdline,
      memoryMiB: 64,
      virtioCmdline: false,
    });
    const reported = firstPhase(vm);
    await vm.start();
    expect(await reported).toMatchObject({ code: ZERO_PAGE >> 8 });

    const params = debugReadGuest(vm, ZERO_PAGE, 4096);
    expect(params.toString('latin1', 0x202, 0x206)).toBe('HdrS'); // the header, copied
    expect(params[0x210]).toBe(0xff); // type_of_loader
    expect(params.readUInt32LE(0x228)).toBe(CMDLINE_ADDRESS);
    expect(debugReadGuest(vm, CMDLINE_ADDRESS, cmdline.length + 1).toString('latin1')).toBe(`${cmdline}\0`);
    const ramdisk = params.readUInt32LE(0x218);
    expect(params.readUInt32LE(0x21c)).toBe(initrd.length);
    expect(ramdisk % 4096).toBe(0);
    expect(ramdisk).toBeGreaterThanOrEqual(0x1000000 + 0x200000); // above pref_address + init_size
    expect(debugReadGuest(vm, ramdisk, initrd.length).equals(initrd)).toBe(true);
    // e820: low RAM, then 1 MiB to the end of the 64 MiB.
    expect(params[0x1e8]).toBe(2);
    const e820 = (i: number) => ({
      addr: Number(params.readBigUInt64LE(0x2d0 + i * 20)),
      size: Number(params.readBigUInt64LE(0x2d0 + i * 20 + 8)),
      type: params.readUInt32LE(0x2d0 + i * 20 + 16),
    });
    expect(e820(0)).toEqual({ addr: 0, size: 0x9fc00, type: 1 });
    expect(e820(1)).toEqual({ addr: 0x100000, size: (64 << 20) - 0x100000, type: 1 });
    await vm.stop();
  });

  const refused: [string, Buffer, string][] = [
    ['a truncated image', syntheticBzImage({ truncateTo: SETUP_BYTES + 0x800 }), 'truncated'],
    ['a header cut short', syntheticBzImage({ truncateTo: 0x230 }), 'too small for a setup header'],
    ['boot protocol 2.11', syntheticBzImage({ version: 0x020b }), 'older than 2.12'],
    ['no 64-bit entry', syntheticBzImage({ xloadflags: 0 }), 'XLF_KERNEL_64'],
    ['a foreign file', syntheticBzImage({ magic: 'NoPe' }), 'neither an ELF file'],
  ];
  for (const [what, image, message] of refused) {
    it(`refuses ${what} with a clear error`, async () => {
      await expect(Vm.create({ kernel: write(`bad-${what.replace(/\W+/g, '-')}`, image), memoryMiB: 64 })).rejects.toMatchObject({
        code: 'EBADKERNEL',
        message: expect.stringContaining(message),
      });
    });
  }

  it('refuses a kernel whose init_size does not fit in guest memory', async () => {
    const image = syntheticBzImage();
    image.writeUInt32LE(0x7000000, 0x260); // 112 MiB at 16 MiB: more than 64 MiB
    await expect(Vm.create({ kernel: write('big', image), memoryMiB: 64 })).rejects.toMatchObject({
      code: 'EBADKERNEL',
      message: expect.stringContaining('init_size'),
    });
  });
});
