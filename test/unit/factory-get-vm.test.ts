/**
 * Kata B39 `factory.GetVM` on a fake hypervisor: the hand-over order (resume, reseed, time
 * sync), the probe's generation check, a failed step stopping the VM, and the fallback to a
 * directly booted VM when the requested config does not fit.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { NodevisorError } from '../../src/errors.js';
import { buildFactory, RESEED_BYTES, type NewFactoryConfig } from '../../src/factory/factory.js';
import { tempDir } from '../helpers/tmp.js';
import { DirStateFs, FakeHypervisor, withLogLines, type FakeOp, nextTurn } from './factory-fake-hypervisor.js';

const vmConfig = { hypervisorConfig: { kernelPath: '/k.elf', kernelParams: [], memorySize: 256, numVCPUs: 2 } };

async function factoryOf(over: Partial<NewFactoryConfig> = {}, prepare?: (hv: FakeHypervisor) => void) {
  const hypervisor = new FakeHypervisor();
  prepare?.(hypervisor);
  const config: NewFactoryConfig = { template: false, cache: 0, vmConfig, statePath: join(tempDir('nodevisor-factory-'), 't'), ...over };
  const factory = await buildFactory(config, false, { hypervisor, stateFs: new DirStateFs() });
  return { factory, hypervisor, mark: hypervisor.journal.length, statePath: config.statePath! };
}

describe('getVm (B39)', () => {
  it.each([false, true])('resumes (a template clone: restores running), reseeds with 512 random bytes, syncs the time, and hands over a running VM (template: %s)', async (template) => {
    const { factory, hypervisor, mark, statePath } = await factoryOf({ template });
    const before = Date.now();
    const vm = await factory.getVm(vmConfig);
    await nextTurn();
    // A direct VM is booted, paused (the base factory's VM) and resumed; a template clone is
    // restored running in one step. The template then prepares the next clone's restore, on
    // the next turn of the event loop (the caller has its VM first).
    const start = template ? [`restore ${vm.id}`] : [`boot ${vm.id}`, `pause ${vm.id}`, `resume ${vm.id}`];
    const prepared = template ? ['prepareRestore'] : [];
    expect(hypervisor.journal.slice(mark)).toEqual([...start, `rngReseed ${vm.id}`, `timeSync ${vm.id}`, ...prepared]);
    expect(hypervisor.prepared).toEqual(template ? [statePath] : []);
    expect(vm.state).toBe('running');
    expect(vm.seeds).toHaveLength(1);
    expect(vm.seeds[0]).toHaveLength(RESEED_BYTES);
    expect(vm.times[0]!.getTime()).toBeGreaterThanOrEqual(before);
    const other = await factory.getVm(vmConfig);
    expect(other.seeds[0]!.equals(vm.seeds[0]!)).toBe(false);
    await Promise.all([vm.stop(), other.stop(), factory.close()]);
  });

  it('checks a probe clone\'s generation instead (the probe has no RNG or clock to set)', async () => {
    const { factory, hypervisor, mark } = await factoryOf({ template: true }, (hv) => (hv.guest = 'probe'));
    const vm = await factory.getVm(vmConfig);
    expect(hypervisor.journal.slice(mark)).toEqual([`restore ${vm.id}`, `generation ${vm.id}`]);
    await nextTurn();
    expect(hypervisor.journal.slice(mark)).toEqual([`restore ${vm.id}`, `generation ${vm.id}`, 'prepareRestore']);
    expect(vm.templateGeneration).toBe(hypervisor.vms[0]!.currentGeneration);
    expect(vm.currentGeneration).not.toBe(vm.templateGeneration);
    await Promise.all([vm.stop(), factory.close()]);
  });

  it('refuses (and stops) a probe clone that still reports the template\'s generation', async () => {
    const { factory, hypervisor } = await factoryOf({ template: true }, (hv) => (hv.guest = 'probe'));
    hypervisor.clonesKeepGeneration = true;
    await expect(factory.getVm(vmConfig)).rejects.toMatchObject({
      code: 'ENOTUNIQUE',
      message: expect.stringMatching(/^cannot hand over VM vm2: the clone still reports the template's generation [0-9a-f]{16}$/),
    });
    expect(hypervisor.live()).toEqual([]);
    await factory.close();
  });

  it('a directly booted probe needs no generation check', async () => {
    const { factory, hypervisor, mark } = await factoryOf({}, (hv) => (hv.guest = 'probe'));
    const vm = await factory.getVm(vmConfig);
    expect(hypervisor.journal.slice(mark)).toEqual([`boot ${vm.id}`, `pause ${vm.id}`, `resume ${vm.id}`]);
    await vm.stop();
  });

  it.each<[FakeOp, boolean]>([
    ['resume', false],
    ['rngReseed', true],
    ['timeSync', true],
  ])('stops the VM when %s fails, and says which VM (template: %s)', async (op, template) => {
    const { factory, hypervisor } = await factoryOf({ template });
    hypervisor.failOn(op, new NodevisorError(`${op} broke`, { code: 'EAGENT' }), 1);
    const id = template ? 'vm2' : 'vm1'; // a template is vm1
    await expect(factory.getVm(vmConfig)).rejects.toMatchObject({ code: 'EAGENT', message: `cannot hand over VM ${id}: ${op} broke` });
    expect(hypervisor.live()).toEqual([]);
    expect(hypervisor.journal).toContain(`stop ${id}`);
    const next = await factory.getVm(vmConfig);
    expect(next.state).toBe('running');
    await Promise.all([next.stop(), factory.close()]);
  });

  it('falls back to a directly booted, running VM when the config does not match, and logs it', async () => {
    await withLogLines(async (lines) => {
      const { factory, hypervisor, mark } = await factoryOf({ template: true });
      const requested = { hypervisorConfig: { ...vmConfig.hypervisorConfig, kernelParams: [{ key: 'debug', value: '' }] } };
      const vm = await factory.getVm(requested);
      expect(hypervisor.journal.slice(mark)).toEqual([`boot ${vm.id}`]);
      expect(vm.state).toBe('running');
      expect(vm.config?.hypervisorConfig.kernelParams).toEqual([{ key: 'debug', value: '' }]);
      const line = lines.find((l) => l.msg === 'fallback to direct factory vm');
      expect(line).toMatchObject({ subsystem: 'factory', reason: expect.stringMatching(/^hypervisor config does not match/) });
      await Promise.all([vm.stop(), factory.close()]);
    });
  });

  it('falls back when more vCPUs or memory are requested than the factory\'s VMs have; serves fewer from the factory', async () => {
    const { factory, hypervisor, mark } = await factoryOf({ template: true });
    const bigger = await factory.getVm({ hypervisorConfig: { ...vmConfig.hypervisorConfig, memorySize: 1024 } });
    expect(hypervisor.journal.slice(mark)).toEqual([`boot ${bigger.id}`]);
    const smaller = await factory.getVm({ hypervisorConfig: { ...vmConfig.hypervisorConfig, memorySize: 128, numVCPUs: 1 } });
    expect(hypervisor.journal).toContain(`restore ${smaller.id}`);
    await Promise.all([bigger.stop(), smaller.stop(), factory.close()]);
  });

  it('rejects an invalid requested config before taking a VM', async () => {
    const { factory, hypervisor, mark } = await factoryOf({ template: true });
    await expect(factory.getVm({ hypervisorConfig: { kernelPath: '', kernelParams: [] } })).rejects.toThrow('requested VM config: Missing kernel path');
    await expect(factory.getVm(undefined as never)).rejects.toThrow(/requested VM config must be an object/);
    expect(hypervisor.journal.slice(mark)).toEqual([]);
    await factory.close();
  });

  it('getBaseVm hands a paused VM that is not made unique (Kata: GetBaseVM)', async () => {
    const { factory, hypervisor, mark } = await factoryOf({ template: true });
    const vm = await factory.getBaseVm();
    expect(vm.state).toBe('paused');
    expect(hypervisor.journal.slice(mark)).toEqual([`restore ${vm.id}`]);
    await Promise.all([vm.stop(), factory.close()]);
  });
});
