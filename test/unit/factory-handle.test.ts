/**
 * Kata B6 `HandleFactory`: nothing without a template or a cache; load, else create, else no
 * factory, with Kata's log lines; it never rejects; the factory it sets is `currentFactory()`.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import type { RuntimeConfig } from '../../src/config/types.js';
import { buildFactory, type Factory, type NewFactoryConfig } from '../../src/factory/factory.js';
import {
  clearCurrentFactory,
  currentFactory,
  handleFactoryWith,
  processRuntime,
  type FactoryRuntime,
} from '../../src/factory/handle-factory.js';
import type { FactoryVm } from '../../src/factory/hypervisor.js';
import { tempDir } from '../helpers/tmp.js';
import { DirStateFs, FakeHypervisor, withLogLines } from './factory-fake-hypervisor.js';

function runtimeConfig(factoryConfig: Partial<RuntimeConfig['factoryConfig']>): RuntimeConfig {
  return {
    hypervisorConfig: { kernelPath: '/k.elf', kernelParams: [], memorySize: 64 },
    factoryConfig: { template: false, vmCacheNumber: 0, vmCacheEndpoint: '', ...factoryConfig },
    trace: false,
    disableNewNetNs: false,
  };
}

/** A runtime that records what it is given, and a newFactory on a fake hypervisor recording its calls. */
function harness(statePath = join(tempDir('nodevisor-factory-'), 't')) {
  const hypervisor = new FakeHypervisor();
  const stateFs = new DirStateFs();
  const calls: { config: NewFactoryConfig; fetchOnly: boolean }[] = [];
  const set: Factory<FactoryVm>[] = [];
  const runtime: FactoryRuntime = { setFactory: (f) => set.push(f) };
  const make = (config: NewFactoryConfig, fetchOnly: boolean) => {
    calls.push({ config, fetchOnly });
    return buildFactory({ ...config, statePath }, fetchOnly, { hypervisor, stateFs }) as Promise<Factory<FactoryVm>>;
  };
  return { hypervisor, stateFs, calls, set, runtime, make, statePath };
}

const messages = (lines: Record<string, unknown>[]) => lines.filter((l) => l.subsystem === 'factory').map((l) => `${String(l.level)} ${String(l.msg)}`);

afterEach(async () => {
  await clearCurrentFactory()?.close();
});

describe('handleFactory (B6)', () => {
  it('does nothing without a template or a cache', async () => {
    const h = harness();
    await handleFactoryWith(h.make, h.runtime, runtimeConfig({ vmCacheEndpoint: '/run/nodevisor/cache.sock' }));
    expect(h.calls).toEqual([]);
    expect(h.set).toEqual([]);
  });

  it('loads an existing template (fetchOnly) and sets it, without making another', async () => {
    const h = harness();
    const first = await h.make({ template: true, cache: 0, vmConfig: { hypervisorConfig: runtimeConfig({}).hypervisorConfig } }, false);
    h.calls.length = 0;
    await withLogLines(async (lines) => {
      await handleFactoryWith(h.make, h.runtime, runtimeConfig({ template: true }));
      expect(messages(lines)).toEqual(['30 load vm factory']);
    });
    expect(h.calls.map((c) => c.fetchOnly)).toEqual([true]);
    expect(h.calls[0]!.config).toEqual({
      template: true,
      cache: 0,
      vmCacheEndpoint: '',
      vmConfig: { hypervisorConfig: runtimeConfig({}).hypervisorConfig },
    });
    expect(h.set).toHaveLength(1);
    expect(h.hypervisor.journal.filter((l) => l.startsWith('boot'))).toHaveLength(1);
    await first.close();
  });

  it('makes a new factory when loading fails, and warns', async () => {
    const h = harness();
    await withLogLines(async (lines) => {
      await handleFactoryWith(h.make, h.runtime, runtimeConfig({ template: true }));
      expect(messages(lines)).toEqual(['30 load vm factory', '40 load vm factory failed, about to create new one', '30 vm template created']);
      expect(lines.find((l) => l.msg === 'load vm factory failed, about to create new one')).toMatchObject({ err: { code: 'ENOENT' } });
    });
    expect(h.calls.map((c) => c.fetchOnly)).toEqual([true, false]);
    expect(h.set).toHaveLength(1);
    await h.set[0]!.close();
  });

  it('with a cache, passes vmCacheNumber as the in-process pool: the fetch fails as in Kata, and a pool is made', async () => {
    const h = harness();
    await withLogLines(async (lines) => {
      await handleFactoryWith(h.make, h.runtime, runtimeConfig({ vmCacheNumber: 2, vmCacheEndpoint: '/run/nodevisor/cache.sock' }));
      const warn = lines.find((l) => l.msg === 'load vm factory failed, about to create new one');
      expect(warn).toMatchObject({ err: { message: 'cache factory does not support fetch' } });
    });
    expect(h.calls.map((c) => [c.config.cache, c.fetchOnly])).toEqual([[2, true], [2, false]]);
    expect(h.set).toHaveLength(1);
    await h.set[0]!.close();
  });

  it('goes on without a factory when creating fails too, and resolves', async () => {
    const h = harness();
    h.hypervisor.failOn('boot', new Error('no kvm'));
    await withLogLines(async (lines) => {
      await expect(handleFactoryWith(h.make, h.runtime, runtimeConfig({ template: true }))).resolves.toBeUndefined();
      expect(messages(lines)).toEqual(['30 load vm factory', '40 load vm factory failed, about to create new one', '40 create vm factory failed']);
      expect(lines.at(-1)).toMatchObject({ err: { message: expect.stringMatching(/no kvm/) } });
    });
    expect(h.set).toEqual([]);
  });

  it('never rejects: not on a broken runtime config, not when the runtime throws', async () => {
    const h = harness();
    await expect(handleFactoryWith(h.make, h.runtime, undefined as never)).resolves.toBeUndefined();
    await expect(handleFactoryWith(h.make, h.runtime, runtimeConfig({ template: true, vmCacheNumber: -3 }))).resolves.toBeUndefined();
    const throwing: FactoryRuntime = {
      setFactory() {
        throw new Error('runtime gone');
      },
    };
    await withLogLines(async (lines) => {
      await expect(handleFactoryWith(h.make, throwing, runtimeConfig({ template: true }))).resolves.toBeUndefined();
      expect(messages(lines)).toContain('40 vm factory not set');
    });
  });

  it('sets the process factory that sandbox creation uses; a second one replaces (and closes) the first', async () => {
    const h = harness();
    expect(currentFactory()).toBeUndefined();
    await handleFactoryWith(h.make, processRuntime, runtimeConfig({ vmCacheNumber: 1 }));
    const first = currentFactory();
    expect(first).toBeDefined();
    const vm = (await first!.getVm({ hypervisorConfig: runtimeConfig({}).hypervisorConfig })) as unknown as { state: string; stop(): Promise<void> };
    expect(vm.state).toBe('running');
    await handleFactoryWith(h.make, processRuntime, runtimeConfig({ vmCacheNumber: 1 }));
    expect(currentFactory()).not.toBe(first);
    await expect(first!.getVm({ hypervisorConfig: runtimeConfig({}).hypervisorConfig })).rejects.toMatchObject({ code: 'ECLOSED' });
    await vm.stop();
  });
});
