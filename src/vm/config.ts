/**
 * Checks a `Vm.create` config before anything native runs, so a mistake gets a clear
 * NodevisorError naming the field (DESIGN §8). The VMM checks again (sizes, ELF headers);
 * this layer catches what a caller can fix without reading C++ messages.
 */
import { stat } from 'node:fs/promises';

import { invalid, NodevisorError } from '../errors.js';

export interface VmConfig {
  /** Path of a PVH ELF kernel (Linux vmlinux, or `probeGuestPath()`). */
  kernel: string;
  initrd?: string;
  cmdline?: string;
  /** Guest RAM in MiB, 2..65536. Default 128. */
  memoryMiB?: number;
  /** vCPUs, 1..64. Default 1. vCPU 0 boots; the others wait for the guest to start them. */
  vcpus?: number;
}

export interface CheckedVmConfig {
  kernel: string;
  initrd?: string;
  cmdline: string;
  memoryMiB: number;
  vcpus: number;
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

async function regularFile(path: unknown, name: string): Promise<string> {
  if (typeof path !== 'string' || path.length === 0) throw invalid(`${name} must be a non-empty path`);
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'ENOENT';
    throw new NodevisorError(`${name} ${path} cannot be read: ${(err as Error).message}`, {
      code,
      path,
      syscall: 'stat',
      cause: err,
    });
  }
  if (!info.isFile()) throw new NodevisorError(`${name} ${path} is not a regular file`, { code: 'EINVAL', path });
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
  const kernel = await regularFile(config.kernel, 'kernel');
  const checked: CheckedVmConfig = { kernel, cmdline, memoryMiB, vcpus };
  if (config.initrd !== undefined) checked.initrd = await regularFile(config.initrd, 'initrd');
  return checked;
}
