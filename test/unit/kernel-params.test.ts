import { describe, expect, it } from 'vitest';

import {
  getKernelParams,
  kernelParamsToCmdline,
  needSystemd,
  NO_TRACE_KERNEL_PARAMS,
  setKernelParams,
  SYSTEMD_KERNEL_PARAMS,
} from '../../src/config/kernel-params.js';
import type { RuntimeConfig } from '../../src/config/types.js';
import { NodevisorError } from '../../src/errors.js';

function runtime(over: Partial<RuntimeConfig['hypervisorConfig']> = {}, trace = false): RuntimeConfig {
  return {
    hypervisorConfig: { kernelPath: '/k', kernelParams: [], ...over },
    factoryConfig: { template: false, vmCacheNumber: 0, vmCacheEndpoint: '' },
    trace,
    disableNewNetNs: false,
  };
}

describe('getKernelParams', () => {
  it('is empty without systemd, whatever trace is', () => {
    expect(getKernelParams(false, false)).toEqual([]);
    expect(getKernelParams(false, true)).toEqual([]);
  });

  it('is the four systemd params with trace on', () => {
    expect(getKernelParams(true, true)).toEqual([
      { key: 'init', value: '/usr/lib/systemd/systemd' },
      { key: 'systemd.unit', value: 'kata-containers.target' },
      { key: 'systemd.mask', value: 'systemd-networkd.service' },
      { key: 'systemd.mask', value: 'systemd-networkd.socket' },
    ]);
  });

  it('adds the 13 no-trace masks with trace off, in order', () => {
    const params = getKernelParams(true, false);
    expect(params).toHaveLength(17);
    expect(params.slice(4).every((p) => p.key === 'systemd.mask')).toBe(true);
    expect(params[4]!.value).toBe('systemd-journald.service');
    expect(params[15]!.value).toBe('tmp.mount');
    expect(params[16]!.value).toBe('systemd-random-seed.service');
  });

  it('returns fresh objects the caller may change', () => {
    const a = getKernelParams(true, false);
    a[0]!.value = 'changed';
    expect(getKernelParams(true, false)[0]!.value).toBe('/usr/lib/systemd/systemd');
    expect(SYSTEMD_KERNEL_PARAMS[0]!.value).toBe('/usr/lib/systemd/systemd');
    expect(NO_TRACE_KERNEL_PARAMS).toHaveLength(13);
  });
});

describe('needSystemd', () => {
  it('is true exactly when an image path is set', () => {
    expect(needSystemd({ imagePath: '/img' })).toBe(true);
    expect(needSystemd({ imagePath: '' })).toBe(false);
    expect(needSystemd({})).toBe(false);
  });
});

describe('setKernelParams', () => {
  it('puts the defaults first and the user params after, keeping duplicates', () => {
    const input = runtime({ imagePath: '/img', kernelParams: [{ key: 'systemd.mask', value: 'tmp.mount' }, { key: 'quiet', value: '' }] });
    const out = setKernelParams(input);
    const params = out.hypervisorConfig.kernelParams;
    expect(params).toHaveLength(19);
    expect(params[0]).toEqual({ key: 'init', value: '/usr/lib/systemd/systemd' });
    expect(params.slice(-2)).toEqual([{ key: 'systemd.mask', value: 'tmp.mount' }, { key: 'quiet', value: '' }]);
    expect(params.filter((p) => p.value === 'tmp.mount')).toHaveLength(2);
  });

  it('only has the user params for an initrd guest', () => {
    const out = setKernelParams(runtime({ initrdPath: '/i', kernelParams: [{ key: 'console', value: 'ttyS0' }] }));
    expect(out.hypervisorConfig.kernelParams).toEqual([{ key: 'console', value: 'ttyS0' }]);
  });

  it('uses the trace flag of the runtime config', () => {
    const out = setKernelParams(runtime({ imagePath: '/img' }, true));
    expect(out.hypervisorConfig.kernelParams).toHaveLength(4);
  });

  it('does not change its input', () => {
    const input = runtime({ imagePath: '/img', kernelParams: [{ key: 'quiet', value: '' }] });
    const before = structuredClone(input);
    setKernelParams(input);
    expect(input).toEqual(before);
  });

  it('rejects an empty key, naming the parameter', () => {
    const input = runtime({ kernelParams: [{ key: 'ok', value: '1' }, { key: '', value: 'x' }] });
    expect(() => setKernelParams(input)).toThrow(NodevisorError);
    expect(() => setKernelParams(input)).toThrow(/kernel parameter #2 has an empty key \(value "x"\)/);
  });

  it('rejects whitespace that would split a parameter', () => {
    expect(() => setKernelParams(runtime({ kernelParams: [{ key: 'a', value: 'b c' }] }))).toThrow(/whitespace/);
  });
});

describe('kernelParamsToCmdline', () => {
  it('renders key=value and bare keys', () => {
    expect(kernelParamsToCmdline([{ key: 'console', value: 'ttyS0' }, { key: 'quiet', value: '' }])).toBe('console=ttyS0 quiet');
  });
});
