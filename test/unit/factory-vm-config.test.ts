/** Kata B30 (VMConfig.Valid) and B39 checkVMConfig, as nodevisor adapts them (src/factory/vm-config.ts). */
import { describe, expect, it } from 'vitest';

import type { HypervisorConfig } from '../../src/config/types.js';
import { checkFactoryVmConfig, vmConfigMismatch } from '../../src/factory/vm-config.js';

const hc = (over: Partial<HypervisorConfig> = {}): { hypervisorConfig: HypervisorConfig } => ({
  hypervisorConfig: { kernelPath: '/k.elf', kernelParams: [], ...over },
});

describe('checkFactoryVmConfig (B30)', () => {
  it('needs a kernel path, and names the config', () => {
    expect(() => checkFactoryVmConfig(hc({ kernelPath: '' }))).toThrow('vmConfig: Missing kernel path');
    expect(() => checkFactoryVmConfig(hc({ kernelPath: '' }), 'requested VM config')).toThrow('requested VM config: Missing kernel path');
    expect(() => checkFactoryVmConfig({} as never)).toThrow('vmConfig.hypervisorConfig must be an object');
    expect(() => checkFactoryVmConfig(null as never)).toThrow(/must be an object/);
  });

  it('fills the defaults in on a copy and leaves the caller\'s config alone', () => {
    const config = hc();
    const checked = checkFactoryVmConfig(config);
    expect(checked.hypervisorConfig).toEqual({
      kernelPath: '/k.elf',
      imagePath: '',
      initrdPath: '',
      kernelParams: [],
      memorySize: 128,
      numVCPUs: 1,
      hotplugSlots: 0,
      hotplugNetSlots: 0,
      debug: false,
    });
    expect(config.hypervisorConfig).toEqual({ kernelPath: '/k.elf', kernelParams: [] });
    expect(checked.hypervisorConfig.kernelParams).not.toBe(config.hypervisorConfig.kernelParams);
  });

  it('returns a frozen copy: a factory\'s config() cannot be changed behind its back', () => {
    const checked = checkFactoryVmConfig({ hypervisorConfig: { kernelPath: '/k.elf', kernelParams: [{ key: 'a', value: 'b' }] } });
    expect(Object.isFrozen(checked)).toBe(true);
    expect(Object.isFrozen(checked.hypervisorConfig)).toBe(true);
    expect(Object.isFrozen(checked.hypervisorConfig.kernelParams)).toBe(true);
    expect(Object.isFrozen(checked.hypervisorConfig.kernelParams[0])).toBe(true);
    expect(() => {
      (checked.hypervisorConfig as { memorySize: number }).memorySize = 0;
    }).toThrow(TypeError);
    expect(() => checked.hypervisorConfig.kernelParams.push({ key: 'c', value: '' })).toThrow(TypeError);
  });

  it('accepts a kernel without image or initrd (the probe guest), unlike Kata', () => {
    expect(() => checkFactoryVmConfig(hc())).not.toThrow();
  });

  it.each([
    [{ memorySize: 1 }, /memorySize must be an integer from 2 to 65536, got 1/],
    [{ memorySize: 1.5 }, /memorySize must be an integer/],
    [{ numVCPUs: 65 }, /numVCPUs must be an integer from 1 to 64/],
    [{ hotplugSlots: -1 }, /hotplugSlots must be an integer from 0/],
    [{ hotplugNetSlots: 19 }, /hotplugNetSlots must be an integer from 0 to 18/],
    [{ initrdPath: 7 as unknown as string }, /initrdPath must be a string path/],
    [{ kernelParams: 'quiet' as unknown as [] }, /kernelParams must be an array/],
    [{ kernelParams: [{ key: 1 }] as unknown as [] }, /kernelParams\[0\] must be/],
    [{ debug: 'yes' as unknown as boolean }, /debug must be a boolean/],
  ])('rejects %j with a message naming the field', (over, re) => {
    expect(() => checkFactoryVmConfig(hc(over))).toThrow(re);
  });
});

describe('vmConfigMismatch (B39 checkVMConfig)', () => {
  const base = checkFactoryVmConfig(hc({ memorySize: 512, numVCPUs: 2, kernelParams: [{ key: 'quiet', value: '' }] }));

  it('matches the same config, with defaults and empty values counting as equal', () => {
    expect(vmConfigMismatch(base, base)).toBeUndefined();
    const a = checkFactoryVmConfig(hc({ imagePath: '', kernelParams: undefined as unknown as [] }));
    const b = checkFactoryVmConfig(hc({ kernelParams: [] }));
    expect(vmConfigMismatch(a, b)).toBeUndefined();
  });

  it('lets a factory VM with more vCPUs or memory serve a smaller request', () => {
    const smaller = checkFactoryVmConfig(hc({ memorySize: 128, numVCPUs: 1, kernelParams: [{ key: 'quiet', value: '' }] }));
    expect(vmConfigMismatch(smaller, base)).toBeUndefined();
  });

  it('refuses a request for more vCPUs or memory (no hot-add in nodevisor)', () => {
    const more = (over: Partial<HypervisorConfig>) =>
      checkFactoryVmConfig(hc({ memorySize: 512, numVCPUs: 2, kernelParams: [{ key: 'quiet', value: '' }], ...over }));
    expect(vmConfigMismatch(more({ numVCPUs: 3 }), base)).toMatch(/have 2 vCPUs, 3 were requested/);
    expect(vmConfigMismatch(more({ memorySize: 1024 }), base)).toMatch(/have 512 MiB, 1024 MiB were requested/);
  });

  it.each([
    [{ kernelPath: '/other.elf' }],
    [{ initrdPath: '/initrd' }],
    [{ kernelParams: [{ key: 'quiet', value: '1' }] }],
    [{ kernelParams: [] }],
    [{ hotplugSlots: 1 }],
    [{ hotplugNetSlots: 2 }],
    [{ debug: true }],
  ])('reports Kata\'s "hypervisor config does not match" for %j', (over) => {
    const requested = checkFactoryVmConfig(hc({ memorySize: 512, numVCPUs: 2, kernelParams: [{ key: 'quiet', value: '' }], ...over }));
    const reason = vmConfigMismatch(requested, base);
    expect(reason).toMatch(/^hypervisor config does not match, base: \{.*\}\. new: \{.*\}$/);
    expect(reason).not.toMatch(/memorySize/);
  });
});
