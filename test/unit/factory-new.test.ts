/**
 * Kata B31-B34 on a fake hypervisor: newFactory's checks and order, the template factory
 * (made on its state directory, fetched, closed) and the direct factory.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { NodevisorError } from '../../src/errors.js';
import { buildFactory, type NewFactoryConfig } from '../../src/factory/factory.js';
import { DirectFactory } from '../../src/factory/direct.js';
import { TemplateFactory } from '../../src/factory/template.js';
import { CacheFactory } from '../../src/factory/cache.js';
import { tempDir } from '../helpers/tmp.js';
import { DirStateFs, FakeHypervisor, withLogLines, nextTurn } from './factory-fake-hypervisor.js';

function setup(over: Partial<NewFactoryConfig> = {}) {
  const hypervisor = new FakeHypervisor();
  const stateFs = new DirStateFs();
  const statePath = join(tempDir('nodevisor-factory-'), 'template');
  const config: NewFactoryConfig = {
    template: false,
    cache: 0,
    vmConfig: { hypervisorConfig: { kernelPath: '/k.elf', kernelParams: [], memorySize: 256 } },
    statePath,
    ...over,
  };
  return { hypervisor, stateFs, statePath, config, env: { hypervisor, stateFs } };
}

describe('newFactory (B31)', () => {
  it('checks the VM config first and fills in the defaults on a copy', async () => {
    const { config, env, hypervisor } = setup({ template: true, vmConfig: { hypervisorConfig: { kernelPath: '', kernelParams: [] } } });
    await expect(buildFactory(config, false, env)).rejects.toThrow('vmConfig: Missing kernel path');
    expect(hypervisor.journal).toEqual([]);

    const ok = setup();
    const factory = await buildFactory({ ...ok.config, vmConfig: { hypervisorConfig: { kernelPath: '/k.elf', kernelParams: [] } } }, false, ok.env);
    expect(factory.config().hypervisorConfig).toMatchObject({ memorySize: 128, numVCPUs: 1 });
  });

  it('refuses fetchOnly with a cache before touching anything', async () => {
    const { config, env, hypervisor, stateFs } = setup({ template: true, cache: 2 });
    await expect(buildFactory(config, true, env)).rejects.toThrow('cache factory does not support fetch');
    expect(hypervisor.journal).toEqual([]);
    expect(stateFs.prepared).toEqual([]);
  });

  it('is a direct factory without template or cache, whatever fetchOnly says, and boots nothing yet', async () => {
    for (const fetchOnly of [true, false]) {
      const { config, env, hypervisor } = setup();
      const factory = await buildFactory(config, fetchOnly, env);
      expect(factory.baseFactory).toBeInstanceOf(DirectFactory);
      expect(hypervisor.journal).toEqual([]);
    }
  });

  it('with template: fetches when fetchOnly, makes one otherwise', async () => {
    const { config, env, hypervisor, statePath } = setup({ template: true });
    await expect(buildFactory(config, true, env)).rejects.toMatchObject({ code: 'ENOENT', path: join(statePath, 'memory') });
    expect(hypervisor.journal).toEqual([]);
    const made = await buildFactory(config, false, env);
    expect(made.baseFactory).toBeInstanceOf(TemplateFactory);
    const fetched = await buildFactory(config, true, env);
    expect(fetched.baseFactory).toBeInstanceOf(TemplateFactory);
    expect(hypervisor.journal.filter((l) => l.startsWith('boot'))).toHaveLength(1);
    await made.close();
  });

  it('wraps the base in a cache when cache > 0', async () => {
    const { config, env } = setup({ cache: 2 });
    const factory = await buildFactory(config, false, env);
    expect(factory.baseFactory).toBeInstanceOf(CacheFactory);
    await factory.close();
  });

  it('refuses a VM cache server endpoint without a pool (B37/B38 are not implemented)', async () => {
    const { config, env } = setup({ vmCacheEndpoint: '/run/nodevisor/cache.sock' });
    await expect(buildFactory(config, false, env)).rejects.toMatchObject({ code: 'ENOTSUP', message: expect.stringMatching(/keeps the VM pool in this process/) });
    const pooled = setup({ cache: 1, vmCacheEndpoint: '/run/nodevisor/cache.sock' });
    const factory = await buildFactory(pooled.config, false, pooled.env);
    await factory.close();
  });

  it.each([
    [{ template: 'yes' as unknown as boolean }, /template must be a boolean/],
    [{ cache: -1 }, /cache must be an integer from 0 to 4096/],
    [{ cache: 2.5 }, /cache must be an integer/],
    [{ statePath: 'relative/dir' }, /statePath must be an absolute directory path/],
    [{ statePath: '/' }, /statePath must be a normal absolute path below \//],
    [{ statePath: '/run/../etc' }, /without \. or \.\. components/],
    [{ vmCacheEndpoint: 3 as unknown as string }, /vmCacheEndpoint must be a string/],
  ])('rejects %j', async (over, re) => {
    const { config, env } = setup(over);
    await expect(buildFactory(config, false, env)).rejects.toThrow(re);
  });
});

describe('template factory (B32)', () => {
  it('boots the template to ready, pauses, snapshots, stops it, on a state fs sized memory + 8 MiB', async () => {
    const { config, env, hypervisor, stateFs, statePath } = setup({ template: true });
    const factory = await buildFactory(config, false, env);
    expect(stateFs.prepared).toEqual([{ path: statePath, sizeMiB: 256 + 8 }]);
    expect(hypervisor.journal).toEqual(['boot vm1', 'pause vm1', 'snapshot vm1', 'stop vm1']);
    expect(existsSync(join(statePath, 'memory'))).toBe(true);
    expect(existsSync(join(statePath, 'state'))).toBe(true);
    const info = JSON.parse(await readFile(join(statePath, 'template.json'), 'utf8')) as Record<string, unknown>;
    expect(info).toMatchObject({ guest: 'agent', config: { hypervisorConfig: { kernelPath: '/k.elf', memorySize: 256 } } });
    await factory.close();
  });

  it('records the probe guest\'s generation with the template', async () => {
    const { config, env, hypervisor, statePath } = setup({ template: true });
    hypervisor.guest = 'probe';
    const factory = await buildFactory(config, false, env);
    expect(hypervisor.journal).toEqual(['boot vm1', 'generation vm1', 'pause vm1', 'snapshot vm1', 'stop vm1']);
    const info = JSON.parse(await readFile(join(statePath, 'template.json'), 'utf8')) as { generation: string };
    expect(info.generation).toBe(hypervisor.vms[0]!.currentGeneration);
    await factory.close();
  });

  it('config() is the original config; getBaseVm is a paused clone, with no agent check', async () => {
    const { config, env, hypervisor } = setup({ template: true });
    const factory = await buildFactory(config, false, env);
    expect(factory.config().hypervisorConfig.kernelPath).toBe('/k.elf');
    const vm = await factory.getBaseVm();
    expect(vm.state).toBe('paused');
    expect(hypervisor.journal.slice(4)).toEqual([`restore ${vm.id}`]);
    await vm.stop();
    await factory.close();
  });

  it('returns the error and removes the state path when the template VM fails; the VM is stopped', async () => {
    const { config, env, hypervisor, stateFs, statePath } = setup({ template: true });
    hypervisor.failOn('snapshot', new NodevisorError('disk full', { code: 'ENOSPC' }));
    await expect(buildFactory(config, false, env)).rejects.toMatchObject({
      code: 'ENOSPC',
      message: `cannot make the VM template at ${statePath}: disk full`,
    });
    expect(hypervisor.live()).toEqual([]);
    expect(stateFs.removed).toEqual([statePath]);
    expect(existsSync(statePath)).toBe(false);
  });

  it('a boot failure leaves nothing either', async () => {
    const { config, env, hypervisor, stateFs, statePath } = setup({ template: true });
    hypervisor.failOn('boot');
    await expect(buildFactory(config, false, env)).rejects.toThrow(/cannot make the VM template .*boot failed/);
    expect(stateFs.removed).toEqual([statePath]);
  });

  it('a state fs that cannot be prepared is an error, with no VM booted (and nothing removed: it is not ours)', async () => {
    const { config, env, hypervisor, stateFs, statePath } = setup({ template: true });
    stateFs.prepareError = new NodevisorError('a filesystem is already mounted', { code: 'EBUSY' });
    await expect(buildFactory(config, false, env)).rejects.toMatchObject({ code: 'EBUSY', message: `cannot prepare the VM template at ${statePath}: a filesystem is already mounted` });
    expect(hypervisor.journal).toEqual([]);
    expect(stateFs.removed).toEqual([]);
  });

  it('refuses a template over a writable rootfs image before preparing anything', async () => {
    const { config, env, hypervisor, stateFs } = setup({
      template: true,
      vmConfig: { hypervisorConfig: { kernelPath: '/k.elf', kernelParams: [], imagePath: '/rootfs.img' } },
    });
    await expect(buildFactory(config, false, env)).rejects.toThrow(/clones would share one writable rootfs image/);
    expect(hypervisor.journal).toEqual([]);
    expect(stateFs.prepared).toEqual([]);
  });

  it('close() first releases the restore prepared for the next clone, then removes the state path, even when releasing fails', async () => {
    const { config, env, hypervisor, stateFs, statePath } = setup({ template: true });
    const factory = await buildFactory(config, false, env);
    const vm = await factory.getVm(config.vmConfig);
    await nextTurn();
    expect(hypervisor.prepared).toEqual([statePath]);
    const remove = stateFs.remove.bind(stateFs);
    stateFs.remove = async (path) => {
      hypervisor.journal.push(`remove ${path}`);
      await remove(path);
    };
    hypervisor.failOn('forget', new NodevisorError('still busy', { code: 'EBUSY' }));
    const logged = await withLogLines(async (lines) => {
      await factory.close();
      return lines;
    });
    expect(hypervisor.journal.slice(-2)).toEqual(['forget', `remove ${statePath}`]);
    expect(existsSync(statePath)).toBe(false);
    expect(logged.some((l) => l.msg === 'cannot release the restore prepared from the template')).toBe(true);
    await vm.stop();
  });

  it('a factory closed right after a hand-over does not prepare the next clone (nothing would release it)', async () => {
    const { config, env, hypervisor } = setup({ template: true });
    const factory = await buildFactory(config, false, env);
    const vm = await factory.getVm(config.vmConfig);
    await factory.close();
    await nextTurn();
    expect(hypervisor.prepared).toEqual([]);
    expect(hypervisor.journal).not.toContain('prepareRestore');
    await vm.stop();
  });

  it('close() removes the state path (Kata: umount + RemoveAll), once', async () => {
    const { config, env, stateFs, statePath } = setup({ template: true });
    const factory = await buildFactory(config, false, env);
    await Promise.all([factory.close(), factory.close()]);
    expect(stateFs.removed).toEqual([statePath]);
    expect(existsSync(statePath)).toBe(false);
    await expect(factory.getVm(config.vmConfig)).rejects.toMatchObject({ code: 'ECLOSED' });
  });
});

describe('template fetch (B33)', () => {
  async function made() {
    const s = setup({ template: true });
    await buildFactory(s.config, false, s.env);
    return s;
  }

  it('stats memory, then state, and returns the first error with its path', async () => {
    const s = setup({ template: true });
    await mkdir(s.statePath, { recursive: true });
    await expect(buildFactory(s.config, true, s.env)).rejects.toMatchObject({
      code: 'ENOENT',
      path: join(s.statePath, 'memory'),
      message: expect.stringContaining(join(s.statePath, 'memory')),
    });
    await writeFile(join(s.statePath, 'memory'), '');
    await expect(buildFactory(s.config, true, s.env)).rejects.toMatchObject({ code: 'ENOENT', path: join(s.statePath, 'state') });
  });

  it('finds a finished template and clones it without booting', async () => {
    const s = await made();
    const before = s.hypervisor.journal.length;
    const factory = await buildFactory(s.config, true, s.env);
    const vm = await factory.getVm(s.config.vmConfig);
    await nextTurn();
    expect(s.hypervisor.journal.slice(before)).toEqual([`restore ${vm.id}`, `rngReseed ${vm.id}`, `timeSync ${vm.id}`, 'prepareRestore']);
    expect(s.hypervisor.prepared).toEqual([s.statePath]);
    await vm.stop();
  });

  it('refuses a template without template.json (not finished) or with a broken one', async () => {
    const s = await made();
    await writeFile(join(s.statePath, 'template.json'), '{"config": 1');
    await expect(buildFactory(s.config, true, s.env)).rejects.toMatchObject({ code: 'EBADTEMPLATE', message: expect.stringMatching(/template.json cannot be read/) });
    await writeFile(join(s.statePath, 'template.json'), JSON.stringify({ config: { hypervisorConfig: { kernelPath: '/k.elf' } }, guest: 'qemu' }));
    await expect(buildFactory(s.config, true, s.env)).rejects.toThrow(/unknown guest "qemu"/);
    await writeFile(join(s.statePath, 'template.json'), JSON.stringify({ config: {}, guest: 'agent' }));
    await expect(buildFactory(s.config, true, s.env)).rejects.toThrow(/has an invalid config/);
  });

  it('refuses a template made from another VM config (Kata would clone it anyway)', async () => {
    const s = await made();
    const other = { ...s.config, vmConfig: { hypervisorConfig: { kernelPath: '/k.elf', kernelParams: [], memorySize: 512 } } };
    await expect(buildFactory(other, true, s.env)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/made from another VM config: it has 256 MiB/) });
    const otherKernel = { ...s.config, vmConfig: { hypervisorConfig: { kernelPath: '/other.elf', kernelParams: [], memorySize: 256 } } };
    await expect(buildFactory(otherKernel, true, s.env)).rejects.toThrow(/hypervisor config does not match/);
  });
});

describe('direct factory (B34)', () => {
  it('getBaseVm boots and pauses', async () => {
    const { config, env, hypervisor } = setup();
    const factory = await buildFactory(config, false, env);
    const vm = await factory.getBaseVm();
    expect(vm.state).toBe('paused');
    expect(hypervisor.journal).toEqual([`boot ${vm.id}`, `pause ${vm.id}`]);
    await vm.stop();
  });

  it('stops the VM and returns the error when the pause fails', async () => {
    const { config, env, hypervisor } = setup();
    hypervisor.failOn('pause', new NodevisorError('vcpu stuck', { code: 'EBUSY' }));
    const factory = await buildFactory(config, false, env);
    await expect(factory.getBaseVm()).rejects.toMatchObject({ code: 'EBUSY', message: 'cannot pause the new VM vm1: vcpu stuck' });
    expect(hypervisor.live()).toEqual([]);
  });

  it('close does nothing to VMs already handed out', async () => {
    const { config, env, hypervisor } = setup();
    const factory = await buildFactory(config, false, env);
    const vm = await factory.getVm(config.vmConfig);
    await factory.close();
    expect(vm.state).toBe('running');
    expect(hypervisor.journal).not.toContain(`stop ${vm.id}`);
    await vm.stop();
  });
});
