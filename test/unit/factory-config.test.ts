import { describe, expect, it } from 'vitest';

import type { FactoryConfig, HypervisorConfig } from '../../src/config/types.js';
import { checkFactoryConfig, MAX_VM_CACHE_NUMBER } from '../../src/factory/check-config.js';

const hv: HypervisorConfig = { kernelPath: '/boot/probe.elf', kernelParams: [] };
const off: FactoryConfig = { template: false, vmCacheNumber: 0, vmCacheEndpoint: '' };

describe('checkFactoryConfig', () => {
  it('accepts no factory, a template, and a cache', () => {
    expect(() => checkFactoryConfig(off, { kernelPath: '', kernelParams: [] })).not.toThrow();
    expect(() => checkFactoryConfig({ ...off, template: true }, { ...hv, initrdPath: '/i' })).not.toThrow();
    expect(() => checkFactoryConfig({ ...off, vmCacheNumber: 4, vmCacheEndpoint: '/run/nodevisor/cache.sock' }, hv)).not.toThrow();
  });

  it('rejects template together with a cache', () => {
    expect(() => checkFactoryConfig({ ...off, template: true, vmCacheNumber: 2 }, hv)).toThrow('VM factory cannot work together with VM cache');
  });

  it('needs a kernel when a factory is on', () => {
    expect(() => checkFactoryConfig({ ...off, template: true }, { kernelPath: '', kernelParams: [] })).toThrow(/Missing kernel path/);
  });

  it('rejects a template over a writable rootfs image', () => {
    expect(() => checkFactoryConfig({ ...off, template: true }, { ...hv, imagePath: '/img' })).toThrow(/clones would share one writable/);
  });

  it.each([
    [{ ...off, vmCacheNumber: -1 }, /vmCacheNumber must be an integer from 0/],
    [{ ...off, vmCacheNumber: 1.5 }, /vmCacheNumber must be an integer/],
    [{ ...off, vmCacheNumber: MAX_VM_CACHE_NUMBER + 1 }, /vmCacheNumber must be an integer/],
    [{ ...off, template: 'yes' as unknown as boolean }, /template must be a boolean/],
    [{ ...off, vmCacheEndpoint: 'relative.sock' }, /absolute socket path/],
    [{ ...off, vmCacheEndpoint: 5 as unknown as string }, /vmCacheEndpoint must be a string/],
  ])('rejects %j', (config, re) => {
    expect(() => checkFactoryConfig(config, hv)).toThrow(re);
  });
});
