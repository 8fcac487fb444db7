/**
 * Checks a `Vm.create` config before anything native runs, so a mistake gets a clear
 * NodevisorError naming the field (DESIGN §8). The VMM checks again (sizes, ELF headers);
 * this layer catches what a caller can fix without reading C++ messages.
 */
import { stat } from 'node:fs/promises';

import { invalid, NodevisorError } from '../errors.js';
import { checkNetdev, type CheckedNetdev, type NetdevConfig } from './netdev.js';

export interface VmConfig {
  /** Path of a kernel: a PVH ELF (Linux vmlinux, or `probeGuestPath()`) or a Linux bzImage. */
  kernel: string;
  initrd?: string;
  cmdline?: string;
  /** Guest RAM in MiB, 2..65536. Default 128. */
  memoryMiB?: number;
  /** vCPUs, 1..64. Default 1. vCPU 0 boots; the others wait for the guest to start them. */
  vcpus?: number;
  /** Disks attached at boot (virtio-blk), in order. */
  disks?: DiskConfig[];
  /** Empty virtio-blk slots for `attachDisk` while the VM runs. Default 0. */
  hotplugSlots?: number;
  /** Network endpoints at boot (virtio-net), after the disks. */
  netdevs?: NetdevConfig[];
  /** Empty virtio-net slots for `attachNet` while the VM runs. Default 0. */
  hotplugNetSlots?: number;
  /** Also list the virtio devices as `virtio_mmio.device=` on the command line. Default true. */
  virtioCmdline?: boolean;
  /**
   * 'auto' (default): a guest with the nodevisor user-entry note (the probe) starts directly at
   * CPL 3; 'pvh': start it at its PVH entry, as QEMU does (for comparisons).
   */
  bootEntry?: 'auto' | 'pvh';
}

/** A disk for the VM: a regular file (an image) or a block device. */
export interface DiskConfig {
  path: string;
  readOnly?: boolean;
  /** What the guest reads as the disk's serial (virtio-blk GET_ID): at most 20 bytes. */
  serial?: string;
}

/** virtio-mmio devices a VM can have: the agent console plus disks and slots (IOAPIC pins 5-23). */
export const MAX_DISKS = 18;
/** virtio-blk serials are 20 bytes. */
export const MAX_SERIAL_BYTES = 20;

export interface CheckedVmConfig {
  kernel: string;
  initrd?: string;
  cmdline: string;
  memoryMiB: number;
  vcpus: number;
  disks: Required<DiskConfig>[];
  hotplugSlots: number;
  netdevs: CheckedNetdev[];
  hotplugNetSlots: number;
  virtioCmdline: boolean;
  bootEntry: 'auto' | 'pvh';
}

export const MIN_MEMORY_MIB = 2;
export const MAX_MEMORY_MIB = 64 * 1024;
export const MAX_VCPUS = 64;
export const MAX_CMDLINE_BYTES = 0xffff;

function integerIn(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer from ${min} to ${max} (got ${String(value)})`);
  }
  return value;
}

/**
 * A path the VMM will open. Only its form is checked here: the VMM opens the file anyway and
 * reports a missing or unreadable file (ENOENT, EACCES, "not a regular file") with its path;
 * stat-ing it here as well would cost every start a second trip through the libuv pool.
 */
function pathOf(path: unknown, name: string): string {
  if (typeof path !== 'string' || path.length === 0) throw invalid(`${name} must be a non-empty path`);
  if (path.includes('\0')) throw invalid(`${name} must not contain NUL characters`);
  return path;
}

export async function checkVmConfig(config: VmConfig): Promise<CheckedVmConfig> {
  if (typeof config !== 'object' || config === null) throw invalid('Vm.create needs a config object');
  const memoryMiB = integerIn(config.memoryMiB ?? 128, 'memoryMiB', MIN_MEMORY_MIB, MAX_MEMORY_MIB);
  const vcpus = integerIn(config.vcpus ?? 1, 'vcpus', 1, MAX_VCPUS);
  const cmdline = config.cmdline ?? '';
  if (typeof cmdline !== 'string') throw invalid('cmdline must be a string');
  if (cmdline.includes('\0')) throw invalid('cmdline must not contain NUL characters');
  if (Buffer.byteLength(cmdline) > MAX_CMDLINE_BYTES) throw invalid(`cmdline is longer than ${MAX_CMDLINE_BYTES} bytes`);
  const kernel = pathOf(config.kernel, 'kernel');
  const hotplugSlots = integerIn(config.hotplugSlots ?? 0, 'hotplugSlots', 0, MAX_DISKS);
  if (config.disks !== undefined && !Array.isArray(config.disks)) throw invalid('disks must be an array');
  const disks = await Promise.all((config.disks ?? []).map((d, i) => checkDisk(d, `disks[${i}]`)));
  if (disks.length + hotplugSlots > MAX_DISKS) {
    throw invalid(`disks (${disks.length}) and hotplugSlots (${hotplugSlots}) add up to more than ${MAX_DISKS}`);
  }
  const hotplugNetSlots = integerIn(config.hotplugNetSlots ?? 0, 'hotplugNetSlots', 0, MAX_DISKS);
  if (config.netdevs !== undefined && !Array.isArray(config.netdevs)) throw invalid('netdevs must be an array');
  const netdevs = (config.netdevs ?? []).map((n, i) => checkNetdev(n, `netdevs[${i}]`));
  if (disks.length + hotplugSlots + netdevs.length + hotplugNetSlots > MAX_DISKS) {
    throw invalid(
      `disks, hotplugSlots, netdevs and hotplugNetSlots add up to more than ${MAX_DISKS} virtio devices`,
    );
  }
  const virtioCmdline = config.virtioCmdline ?? true;
  if (typeof virtioCmdline !== 'boolean') throw invalid('virtioCmdline must be a boolean');
  const bootEntry = config.bootEntry ?? 'auto';
  if (bootEntry !== 'auto' && bootEntry !== 'pvh') throw invalid(`bootEntry must be 'auto' or 'pvh' (got ${String(bootEntry)})`);
  const checked: CheckedVmConfig = {
    kernel,
    cmdline,
    memoryMiB,
    vcpus,
    disks,
    hotplugSlots,
    netdevs,
    hotplugNetSlots,
    virtioCmdline,
    bootEntry,
  };
  if (config.initrd !== undefined) checked.initrd = pathOf(config.initrd, 'initrd');
  return checked;
}

/** Checks one disk: an existing file or block device, a boolean readOnly, a short serial. */
export async function checkDisk(disk: DiskConfig, name = 'disk'): Promise<Required<DiskConfig>> {
  if (typeof disk !== 'object' || disk === null) throw invalid(`${name} must be an object { path, readOnly?, serial? }`);
  if (typeof disk.path !== 'string' || disk.path.length === 0) throw invalid(`${name}.path must be a non-empty path`);
  let info;
  try {
    info = await stat(disk.path);
  } catch (err) {
    throw new NodevisorError(`${name}.path ${disk.path} cannot be read: ${(err as Error).message}`, {
      code: (err as NodeJS.ErrnoException).code ?? 'ENOENT',
      path: disk.path,
      syscall: 'stat',
      cause: err,
    });
  }
  if (!info.isFile() && !info.isBlockDevice()) {
    throw new NodevisorError(`${name}.path ${disk.path} is neither a regular file nor a block device`, {
      code: 'EINVAL',
      path: disk.path,
    });
  }
  const readOnly = disk.readOnly ?? false;
  if (typeof readOnly !== 'boolean') throw invalid(`${name}.readOnly must be a boolean`);
  const serial = disk.serial ?? '';
  if (typeof serial !== 'string') throw invalid(`${name}.serial must be a string`);
  if (Buffer.byteLength(serial) > MAX_SERIAL_BYTES) {
    throw invalid(`${name}.serial ${JSON.stringify(serial)} is longer than ${MAX_SERIAL_BYTES} bytes (virtio-blk's limit)`);
  }
  return { path: disk.path, readOnly, serial };
}
