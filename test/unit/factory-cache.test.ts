/**
 * Kata B35, the cache factory, on a fake hypervisor: the pool fills to N paused VMs and is
 * refilled after a hand-over; concurrent callers never get the same VM; close stops the
 * producers and every VM not handed out; a producer that fails closes the cache.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { CacheFactory } from '../../src/factory/cache.js';
import { buildFactory, type NewFactoryConfig } from '../../src/factory/factory.js';
import { tempDir } from '../helpers/tmp.js';
import { DirStateFs, FakeHypervisor, type FakeVm } from './factory-fake-hypervisor.js';

const vmConfig = { hypervisorConfig: { kernelPath: '/k.elf', kernelParams: [] } };

async function pooled(cache: number, over: Partial<NewFactoryConfig> = {}, prepare?: (hv: FakeHypervisor) => void) {
  const hypervisor = new FakeHypervisor();
  prepare?.(hypervisor);
  const stateFs = new DirStateFs();
  const statePath = join(tempDir('nodevisor-factory-'), 't');
  const factory = await buildFactory({ template: false, cache, vmConfig, statePath, ...over }, false, { hypervisor, stateFs });
  const pool = factory.baseFactory as CacheFactory<never>;
  return { factory, pool, hypervisor, stateFs, statePath };
}

/** Restores begun so far (the journal says `restore` until the fake names the VM). */
function restoresStarted(hv: FakeHypervisor): number {
  return hv.journal.filter((l) => l.split(' ')[0] === 'restore').length;
}

describe('cache factory (B35)', () => {
  it('fills the pool with N paused VMs in the background', async () => {
    const { factory, pool, hypervisor } = await pooled(3);
    await pool.filled();
    expect(pool.readyCount).toBe(3);
    expect(hypervisor.vms).toHaveLength(3);
    expect(hypervisor.vms.every((vm) => vm.state === 'paused')).toBe(true);
    await factory.close();
  });

  it('hands a pooled VM over and makes a replacement', async () => {
    const { factory, pool, hypervisor } = await pooled(2, { template: true });
    await pool.filled();
    const pooledIds = hypervisor.vms.slice(1).map((vm) => vm.id);
    const vm = await factory.getVm(vmConfig);
    expect(pooledIds).toContain(vm.id);
    expect(vm.state).toBe('running');
    await pool.filled();
    expect(pool.readyCount).toBe(2);
    expect(hypervisor.vms).toHaveLength(1 + 3); // the template, two pooled, one replacement
    await Promise.all([vm.stop(), factory.close()]);
  });

  it('takeReady hands a ready VM out at once, prepareNext replaces it; nothing when the pool is empty or closed', async () => {
    const { factory, pool } = await pooled(1);
    expect(pool.takeReady()).toBeUndefined(); // the first VM is still being made
    await pool.filled();
    const vm = pool.takeReady() as FakeVm | undefined;
    expect(vm?.state).toBe('paused');
    expect(pool.readyCount).toBe(0);
    pool.prepareNext();
    await pool.filled(); // replaced
    expect(pool.readyCount).toBe(1);
    const closing = factory.close();
    expect(pool.takeReady()).toBeUndefined();
    await Promise.all([closing, vm!.stop()]);
  });

  it('a VM taken with takeReady and no prepareNext after it: getBaseVm and filled() start its replacement', async () => {
    const { factory, pool } = await pooled(1);
    await pool.filled();
    const taken = pool.takeReady() as FakeVm | undefined;
    expect(taken?.state).toBe('paused');
    // The taker failed before it could call prepareNext: nothing produces, yet nobody waits for ever.
    const next = (await pool.getBaseVm(factory.config())) as FakeVm;
    expect(next.id).not.toBe(taken!.id);
    expect(pool.takeReady()).toBeUndefined();
    await pool.filled(); // starts the missing producer itself
    expect(pool.readyCount).toBe(1);
    await Promise.all([taken!.stop(), next.stop(), factory.close()]);
  });

  it('makes a VM unique as it joins the pool; the hand-over only resumes it and syncs the time', async () => {
    const { factory, pool, hypervisor } = await pooled(1, { template: true });
    await pool.filled();
    const [pooledVm] = hypervisor.live();
    const id = pooledVm!.id;
    // Once the VM is in the pool, the template prepares the next restore (not before: it would compete with this one).
    expect(hypervisor.journal.slice(4)).toEqual([`restore ${id}`, `resume ${id}`, `rngReseed ${id}`, `pause ${id}`, 'prepareRestore']);
    const mark = hypervisor.journal.length;
    const vm = await factory.getVm(vmConfig);
    expect(vm.id).toBe(id);
    expect(hypervisor.journal.slice(mark, mark + 2)).toEqual([`resume ${id}`, `timeSync ${id}`]);
    expect(vm.seeds).toHaveLength(1);
    expect(vm.times).toHaveLength(1);
    await Promise.all([vm.stop(), factory.close()]);
  });

  it('checks a probe clone\'s generation as it joins the pool; the hand-over is a resume', async () => {
    const { factory, pool, hypervisor } = await pooled(1, { template: true }, (hv) => (hv.guest = 'probe'));
    await pool.filled();
    const id = hypervisor.live()[0]!.id;
    expect(hypervisor.journal.slice(5)).toEqual([`restore ${id}`, `resume ${id}`, `generation ${id}`, `pause ${id}`, 'prepareRestore']);
    const mark = hypervisor.journal.length;
    const vm = await factory.getVm(vmConfig);
    expect(hypervisor.journal[mark]).toBe(`resume ${id}`);
    expect(hypervisor.journal.slice(mark + 1).every((l) => !l.endsWith(` ${id}`))).toBe(true);
    await Promise.all([vm.stop(), factory.close()]);
  });

  it('a pooled probe VM is the caller\'s before its replacement is started, for the factory\'s config or an equal one', async () => {
    const { factory, pool, hypervisor } = await pooled(1, { template: true }, (hv) => (hv.guest = 'probe'));
    for (const requested of [factory.config(), vmConfig]) {
      await pool.filled();
      const id = hypervisor.live().find((vm) => vm.state === 'paused')!.id;
      const restoresBefore = restoresStarted(hypervisor);
      const vm = await factory.getVm(requested);
      // The caller runs on before the pool starts a replacement (it would compete for the CPU).
      const restoresAtHandOver = restoresStarted(hypervisor);
      expect(vm.id).toBe(id);
      expect(vm.state).toBe('running');
      expect(restoresAtHandOver).toBe(restoresBefore);
      await pool.filled();
      expect(restoresStarted(hypervisor)).toBe(restoresBefore + 1);
      await vm.stop();
    }
    await factory.close();
  });

  it('a burst of getVm calls in a row is served from the pool before any replacement is started', async () => {
    const { factory, pool, hypervisor } = await pooled(3, { template: true }, (hv) => (hv.guest = 'probe'));
    await pool.filled();
    const restores = () => restoresStarted(hypervisor);
    const before = restores();
    const vms: FakeVm[] = [];
    for (let i = 0; i < 3; i++) vms.push((await factory.getVm(factory.config())) as FakeVm);
    expect(restores()).toBe(before);
    expect(new Set(vms.map((vm) => vm.id)).size).toBe(3);
    await pool.filled();
    expect(restores()).toBe(before + 3);
    await Promise.all([...vms.map((vm) => vm.stop()), factory.close()]);
  });

  it('a pooled VM whose resume fails is stopped, the error names it, and the pool makes another', async () => {
    const { factory, pool, hypervisor } = await pooled(1, { template: true }, (hv) => (hv.guest = 'probe'));
    await pool.filled();
    const id = hypervisor.live()[0]!.id;
    hypervisor.failOn('resume', new Error('KVM_RUN failed'), 1);
    const err = (await factory.getVm(factory.config()).catch((e: unknown) => e)) as Error & { cause?: Error };
    expect(err.message).toBe(`cannot hand over VM ${id}: KVM_RUN failed`);
    expect(hypervisor.vms.find((vm) => vm.id === id)!.state).toBe('stopped');
    const next = await factory.getVm(factory.config());
    expect(next.id).not.toBe(id);
    expect(next.state).toBe('running');
    await Promise.all([next.stop(), factory.close()]);
  });

  it('a clone that is not unique never joins the pool: it is stopped and the cache closes', async () => {
    const { factory, hypervisor } = await pooled(1, { template: true }, (hv) => {
      hv.guest = 'probe';
      hv.clonesKeepGeneration = true;
    });
    const err = (await factory.getVm(vmConfig).catch((e: unknown) => e)) as Error & { cause?: Error };
    expect(err.message).toMatch(/cache factory is closed/);
    expect(err.cause?.message).toMatch(/still reports the template's generation/);
    expect(hypervisor.live()).toEqual([]);
    await factory.close();
  });

  it('never hands the same VM twice, however many callers wait at once', async () => {
    const { factory, pool, hypervisor } = await pooled(3, {}, (hv) => (hv.delayMs.boot = 2));
    await pool.filled();
    const vms = await Promise.all(Array.from({ length: 40 }, () => factory.getVm(vmConfig)));
    const ids = new Set(vms.map((vm) => vm.id));
    expect(ids.size).toBe(40);
    expect(vms.every((vm) => vm.state === 'running' && vm.seeds.length === 1)).toBe(true);
    // At most N VMs are made beyond those handed out.
    expect(hypervisor.vms.length).toBeLessThanOrEqual(40 + 3);
    await factory.close();
    expect(vms.every((vm) => vm.state === 'running')).toBe(true);
    expect(hypervisor.live()).toHaveLength(40);
    await Promise.all(vms.map((vm) => vm.stop()));
  });

  it('close() stops every VM not handed out, also those being made, and closes the base once', async () => {
    const { factory, pool, hypervisor, stateFs, statePath } = await pooled(3, { template: true }, (hv) => (hv.delayMs.restore = 5));
    await pool.filled();
    const handed = await factory.getVm(vmConfig); // a replacement is now being restored
    await Promise.all([factory.close(), factory.close()]);
    expect(hypervisor.live().map((vm) => vm.id)).toEqual([handed.id]);
    expect(stateFs.removed).toEqual([statePath]);
    await expect(factory.getVm(vmConfig)).rejects.toMatchObject({ code: 'ECLOSED' });
    await expect(pool.getBaseVm(factory.config())).rejects.toThrow('cache factory is closed');
    await handed.stop();
  });

  it('callers waiting when the cache closes get "cache factory is closed"', async () => {
    const { factory, pool, hypervisor } = await pooled(1, {}, (hv) => (hv.delayMs.boot = 20));
    const waiting = expect(pool.getBaseVm(factory.config())).rejects.toThrow('cache factory is closed');
    await factory.close();
    await waiting;
    expect(hypervisor.live()).toEqual([]);
  });

  it('a producer that cannot make a VM closes the cache, with its error as the cause', async () => {
    const { factory, pool, hypervisor } = await pooled(2, {}, (hv) => hv.failOn('boot', new Error('out of memory'), 1));
    const err = await factory.getVm(vmConfig).catch((e: unknown) => e as Error & { cause?: Error });
    expect(err).toMatchObject({ message: expect.stringMatching(/cache factory is closed/) });
    expect((err as { cause?: Error }).cause?.message).toBe('out of memory');
    await factory.close();
    expect(hypervisor.live()).toEqual([]);
    expect(pool.readyCount).toBe(0);
  });
});
