/**
 * Tier 3: what a Linux guest would read to find the virtio devices — the command line and
 * the ACPI tables — taken out of a real VM's guest memory, checked against each other and
 * disassembled by iasl (acpica-tools), the reference ACPI implementation.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { probeGuestPath } from '../../src/guest/probe.js';
import { debugReadGuest } from '../../src/testing.js';
import { Vm } from '../../src/vm/vm.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

const CMDLINE_GPA = 0x20000; // native/vmm/arch/x86_64/layout.h kCmdlineAddress
const RSDP_GPA = 0xe0000; // native/vmm/vm_virtio.cc kAcpiTablesAddress

function sum8(bytes: Buffer): number {
  let s = 0;
  for (const b of bytes) s = (s + b) & 0xff;
  return s;
}

/** An ACPI table (header + body) read from guest memory at `address`, checksum verified. */
function table(vm: Vm, address: number): Buffer {
  const length = debugReadGuest(vm, address + 4, 4).readUInt32LE(0);
  const bytes = debugReadGuest(vm, address, length);
  expect(sum8(bytes), `checksum of ${bytes.subarray(0, 4).toString()}`).toBe(0);
  return bytes;
}

/** A VM with the agent console, a boot disk and two empty slots (four virtio-mmio devices). */
async function vmWithFourDevices(): Promise<Vm> {
  const dir = tempDir();
  const disk = join(dir, 'd.img');
  writeFileSync(disk, Buffer.alloc(4096));
  return Vm.create({ kernel: probeGuestPath(), memoryMiB: 64, cmdline: 'console=ttyS0', disks: [{ path: disk }], hotplugSlots: 2 });
}

/** The devices the command line lists, and the DSDT found through RSDP -> XSDT -> FADT. */
function discovery(vm: Vm): { cmdline: string; entries: { base: number; irq: number }[]; dsdt: Buffer } {
  const raw = debugReadGuest(vm, CMDLINE_GPA, 4096);
  const cmdline = raw.subarray(0, raw.indexOf(0)).toString();
  const entries = [...cmdline.matchAll(/virtio_mmio\.device=4K@0x([0-9a-f]+):(\d+)/g)].map((m) => ({
    base: parseInt(m[1]!, 16),
    irq: Number(m[2]),
  }));
  const rsdp = debugReadGuest(vm, RSDP_GPA, 36);
  expect(rsdp.subarray(0, 8).toString()).toBe('RSD PTR ');
  expect(sum8(rsdp.subarray(0, 20))).toBe(0);
  expect(sum8(rsdp)).toBe(0);
  const xsdt = table(vm, Number(rsdp.readBigUInt64LE(24)));
  const pointers = [0, 1].map((i) => Number(xsdt.readBigUInt64LE(36 + 8 * i)));
  const [fadt, madt] = pointers.map((p) => table(vm, p));
  expect(fadt!.subarray(0, 4).toString()).toBe('FACP');
  expect(madt!.subarray(0, 4).toString()).toBe('APIC');
  const dsdt = table(vm, Number(fadt!.readBigUInt64LE(140)));
  expect(dsdt.subarray(0, 4).toString()).toBe('DSDT');
  return { cmdline, entries, dsdt };
}

const FOUR_DEVICES = [
  { base: 0xd0000000, irq: 5 },
  { base: 0xd0001000, irq: 6 },
  { base: 0xd0002000, irq: 7 },
  { base: 0xd0003000, irq: 8 },
];

describe('virtio device discovery', skipUnless('device discovery tables in guest memory', needs.kvm), () => {
  it('lists every device on the command line and links valid ACPI tables up to the DSDT', async () => {
    const vm = await vmWithFourDevices();
    try {
      const { cmdline, entries, dsdt } = discovery(vm);
      expect(cmdline.startsWith('console=ttyS0 ')).toBe(true);
      // The agent console, the boot disk and two slots.
      expect(entries).toEqual(FOUR_DEVICES);
      expect(dsdt.toString('latin1').match(/LNRO0005/g)).toHaveLength(4);
    } finally {
      await vm.stop();
    }
  });

  it(
    'describes the same devices in the DSDT as on the command line (iasl disassembly)',
    skipUnless('disassembling the DSDT', needs.command('iasl')),
    async () => {
      const vm = await vmWithFourDevices();
      try {
        const { entries, dsdt } = discovery(vm);
        const out = tempDir();
        writeFileSync(join(out, 'dsdt.dat'), dsdt);
        const log = execFileSync('iasl', ['-d', 'dsdt.dat'], { cwd: out, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        expect(log).not.toMatch(/Error/);
        const dsl = readFileSync(join(out, 'dsdt.dsl'), 'utf8');
        const devices = [...dsl.matchAll(/Memory32Fixed \(ReadWrite,\s*0x([0-9A-F]+),[\s\S]*?Interrupt \([^)]*\)\s*\{\s*0x([0-9A-F]+),/g)].map((m) => ({
          base: parseInt(m[1]!, 16),
          irq: parseInt(m[2]!, 16),
        }));
        expect(devices).toEqual(entries);
        expect(dsl.match(/"LNRO0005"/g)).toHaveLength(4);
      } finally {
        await vm.stop();
      }
    },
  );

  it('leaves the command line alone when asked to', async () => {
    const vm = await Vm.create({ kernel: probeGuestPath(), memoryMiB: 64, cmdline: 'quiet', virtioCmdline: false });
    try {
      const raw = debugReadGuest(vm, CMDLINE_GPA, 64);
      expect(raw.subarray(0, raw.indexOf(0)).toString()).toBe('quiet');
    } finally {
      await vm.stop();
    }
  });
});
