/**
 * The VM config a factory makes VMs from: Kata's `VMConfig.Valid()` (B30) and the comparison
 * of a requested config with the factory's (B39 `checkVMConfig`), for nodevisor's
 * HypervisorConfig.
 *
 * Differences from Kata, and why:
 * - One hypervisor and one agent protocol, so there are no hypervisor/agent/proxy types to
 *   require or compare ("Missing agent type", "hypervisor type does not match" cannot happen).
 * - "Missing image and initrd path" is not an error: the probe guest boots from its kernel alone.
 * - Defaults are nodevisor's `Vm.create` defaults (1 vCPU, 128 MiB), not Kata's 2048 MiB, and
 *   they are filled in on a copy, never on the caller's object.
 * - nodevisor cannot hot-add vCPUs or memory, so a factory VM with fewer of either than requested
 *   does not match (Kata hot-added the difference); one with more does.
 */
import type { HypervisorConfig, Param } from '../config/types.js';
import { invalid } from '../errors.js';
import { MAX_DISKS, MAX_MEMORY_MIB, MAX_VCPUS, MIN_MEMORY_MIB } from '../vm/config.js';

/** Kata's `VMConfig`, reduced to what nodevisor has: the hypervisor config. */
export interface FactoryVmConfig {
  hypervisorConfig: HypervisorConfig;
}

/** A HypervisorConfig with every default filled in, so two configs compare field by field. */
export interface CheckedHypervisorConfig {
  kernelPath: string;
  imagePath: string;
  initrdPath: string;
  kernelParams: Param[];
  memorySize: number;
  numVCPUs: number;
  hotplugSlots: number;
  hotplugNetSlots: number;
  debug: boolean;
}

export interface CheckedFactoryVmConfig {
  hypervisorConfig: CheckedHypervisorConfig;
}

export const DEFAULT_MEMORY_MIB = 128;
export const DEFAULT_VCPUS = 1;

function optionalPath(value: unknown, name: string): string {
  if (value === undefined || value === '') return '';
  if (typeof value !== 'string') throw invalid(`${name} must be a string path, got ${JSON.stringify(value)}`);
  if (value.includes('\0')) throw invalid(`${name} must not contain NUL characters`);
  return value;
}

function optionalInteger(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined || value === 0) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Kata B30: checks a factory's (or a requested) VM config and returns a copy with the
 * defaults filled in, frozen (a factory hands its own out as `config()`, and a request that is
 * that very object is not checked again). Like Kata, paths are only checked to be non-empty,
 * not to exist: the VMM reports a missing file with its path when it opens it.
 */
export function checkFactoryVmConfig(config: FactoryVmConfig, what = 'vmConfig'): CheckedFactoryVmConfig {
  if (typeof config !== 'object' || config === null) throw invalid(`${what} must be an object { hypervisorConfig }`);
  const hc = config.hypervisorConfig;
  if (typeof hc !== 'object' || hc === null) throw invalid(`${what}.hypervisorConfig must be an object`);
  if (typeof hc.kernelPath !== 'string' || hc.kernelPath === '') throw invalid(`${what}: Missing kernel path`);
  if (hc.kernelPath.includes('\0')) throw invalid(`${what}.hypervisorConfig.kernelPath must not contain NUL characters`);
  const params = hc.kernelParams ?? [];
  if (!Array.isArray(params)) throw invalid(`${what}.hypervisorConfig.kernelParams must be an array of { key, value }`);
  const kernelParams = params.map((p, i) => {
    if (typeof p !== 'object' || p === null || typeof p.key !== 'string' || typeof (p.value ?? '') !== 'string') {
      throw invalid(`${what}.hypervisorConfig.kernelParams[${i}] must be { key: string, value: string }`);
    }
    return Object.freeze({ key: p.key, value: p.value ?? '' });
  });
  if (hc.debug !== undefined && typeof hc.debug !== 'boolean') throw invalid(`${what}.hypervisorConfig.debug must be a boolean`);
  return Object.freeze({
    hypervisorConfig: Object.freeze({
      kernelPath: hc.kernelPath,
      imagePath: optionalPath(hc.imagePath, `${what}.hypervisorConfig.imagePath`),
      initrdPath: optionalPath(hc.initrdPath, `${what}.hypervisorConfig.initrdPath`),
      kernelParams: Object.freeze(kernelParams) as Param[],
      memorySize: optionalInteger(hc.memorySize, `${what}.hypervisorConfig.memorySize`, DEFAULT_MEMORY_MIB, MIN_MEMORY_MIB, MAX_MEMORY_MIB),
      numVCPUs: optionalInteger(hc.numVCPUs, `${what}.hypervisorConfig.numVCPUs`, DEFAULT_VCPUS, 1, MAX_VCPUS),
      hotplugSlots: optionalInteger(hc.hotplugSlots, `${what}.hypervisorConfig.hotplugSlots`, 0, 0, MAX_DISKS),
      hotplugNetSlots: optionalInteger(hc.hotplugNetSlots, `${what}.hypervisorConfig.hotplugNetSlots`, 0, 0, MAX_DISKS),
      debug: hc.debug ?? false,
    }),
  });
}

function sameParams(a: readonly Param[], b: readonly Param[]): boolean {
  return a.length === b.length && a.every((p, i) => p.key === b[i]!.key && p.value === b[i]!.value);
}

/**
 * Kata B39 `checkVMConfig`: why a VM made from `base` cannot serve `requested`, or undefined
 * when it can. vCPUs and memory are left out of the field comparison, as in Kata, and checked
 * as "at least as many" instead (see the header).
 */
export function vmConfigMismatch(requested: CheckedFactoryVmConfig, base: CheckedFactoryVmConfig): string | undefined {
  const r = requested.hypervisorConfig;
  const b = base.hypervisorConfig;
  const same =
    r.kernelPath === b.kernelPath &&
    r.imagePath === b.imagePath &&
    r.initrdPath === b.initrdPath &&
    sameParams(r.kernelParams, b.kernelParams) &&
    r.hotplugSlots === b.hotplugSlots &&
    r.hotplugNetSlots === b.hotplugNetSlots &&
    r.debug === b.debug;
  if (!same) {
    const strip = ({ memorySize: _m, numVCPUs: _n, ...rest }: CheckedHypervisorConfig) => rest;
    return `hypervisor config does not match, base: ${JSON.stringify(strip(b))}. new: ${JSON.stringify(strip(r))}`;
  }
  if (b.numVCPUs < r.numVCPUs) {
    return `the factory's VMs have ${b.numVCPUs} vCPUs, ${r.numVCPUs} were requested (nodevisor cannot hot-add vCPUs)`;
  }
  if (b.memorySize < r.memorySize) {
    return `the factory's VMs have ${b.memorySize} MiB, ${r.memorySize} MiB were requested (nodevisor cannot hot-add memory)`;
  }
  return undefined;
}
