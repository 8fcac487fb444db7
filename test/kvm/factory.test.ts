/**
 * Tier 3: the VM factory on the real VMM with the probe guest (issue 12). A template on a real
 * tmpfs, its clones answering ping with distinct generations; a pool handing over distinct
 * running VMs; the tmpfs gone after close. Needs /dev/kvm and root (the template is a mount).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { newFactory, type Factory, type FactoryVmHandle } from '../../src/factory/index.js';
import type { CacheFactory } from '../../src/factory/cache.js';
import { probeGuestPath } from '../../src/guest/probe.js';
import { Vm } from '../../src/vm/vm.js';
import { mountAt, readMountInfo } from '../../src/util/mountinfo.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';


const vmConfig = () => ({ hypervisorConfig: { kernelPath: probeGuestPath(), kernelParams: [], memorySize: 64 } });
/** This process's mappings of the file with inode `ino` (its path changes once it is unmounted). */
function mappingsOf(ino: number): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => Number(line.split(/\s+/)[4]) === ino).length;
}

/** vCPU threads of this process (native/vmm/vstate names them nv-vcpu<N>). */
function vcpuThreads(): number {
  return readdirSync('/proc/self/task').filter((tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').startsWith('nv-vcpu');
    } catch {
      return false;
    }
  }).length;
}

describe('VM factory (probe guest)', skipUnless('VM factory on the probe guest, template on a tmpfs', needs.kvm, needs.root), () => {
  const factories: Factory<FactoryVmHandle>[] = [];
  const vms: FactoryVmHandle[] = [];
  afterEach(async () => {
    await Promise.all(vms.splice(0).map((vm) => vm.stop()));
    await Promise.all(factories.splice(0).map((f) => f.close()));
  });

  async function make(options: { template: boolean; cache: number }) {
    const statePath = join(tempDir('nodevisor-factory-'), 'template');
    const factory = await newFactory({ ...options, vmConfig: vmConfig(), statePath }, false);
    factories.push(factory);
    return { factory, statePath };
  }

  it('clones of one template each answer ping and report distinct generations', async () => {
    const { factory, statePath } = await make({ template: true, cache: 0 });
    const mount = mountAt(readMountInfo(), statePath);
    expect(mount).toMatchObject({ fsType: 'tmpfs' });
    expect(mount!.superOptions).toContain(`size=${(64 + 8) * 1024}k`);
    expect(existsSync(join(statePath, 'memory'))).toBe(true);

    const clones: FactoryVmHandle[] = [];
    for (let i = 0; i < 100; i++) {
      const vm = await factory.getVm(vmConfig());
      vms.push(vm);
      clones.push(vm);
    }
    const pongs = await Promise.all(clones.map((vm) => vm.agent.ping()));
    expect(pongs.every((p) => p.agent === 'nodevisor-probe')).toBe(true);
    // Each guest reads its own VM's generation (probe.generation), all different.
    const reported = await Promise.all(clones.map((vm) => vm.agent.request<{ generation: string }>('probe.generation')));
    expect(reported.map((r) => r.generation)).toEqual(clones.map((vm) => vm.vm.generation));
    const generations = new Set(reported.map((r) => r.generation));
    expect(generations.size).toBe(100);
    expect(generations.has(clones[0]!.templateGeneration!)).toBe(false);
    expect(clones.every((vm) => vm.vm.state === 'running')).toBe(true);
    expect(await clones[42]!.agent.echo('still me')).toBe('still me');
  });

  it('clones made four at a time, back to back, each answer their uniqueness check and stop', async () => {
    // Restores taken the moment their VM was prepared: the prepared VM's vCPU thread may not
    // have parked yet when it is resumed, and must still load the clone's state first.
    const { factory } = await make({ template: true, cache: 0 });
    const before = Vm.restoreCounts();
    let made = 0;
    const worker = async () => {
      for (let i = 0; i < 300; i++) {
        const vm = await factory.getVm(vmConfig());
        expect(vm.vm.state).toBe('running');
        made++;
        await vm.stop();
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    expect(made).toBe(1200);
    const counts = Vm.restoreCounts();
    expect(counts.takenNow).toBeGreaterThan(before.takenNow); // the tmpfs template's clones took prepared VMs at once
    expect(counts.takenNow + counts.takenAfterCheck + counts.assembled).toBe(before.takenNow + before.takenAfterCheck + before.assembled + 1200);
  });

  it('a pool hands over N distinct running VMs, refills, and close stops the rest', async () => {
    const { factory } = await make({ template: true, cache: 3 });
    const pool = factory.baseFactory as CacheFactory<FactoryVmHandle>;
    await pool.filled();
    const handed = await Promise.all(Array.from({ length: 8 }, () => factory.getVm(vmConfig())));
    vms.push(...handed);
    expect(new Set(handed.map((vm) => vm.id)).size).toBe(8);
    expect(new Set(handed.map((vm) => vm.vm.generation)).size).toBe(8);
    expect(handed.every((vm) => vm.vm.state === 'running')).toBe(true);
    for (const vm of handed) expect((await vm.agent.ping()).agent).toBe('nodevisor-probe');
    await pool.filled();
    expect(pool.readyCount).toBe(3);

    await Vm.drainTeardown(); // the template's next restore is prepared by now (one parked vCPU thread)
    const threadsBefore = vcpuThreads();
    await factory.close();
    // The three pooled VMs' vCPU threads are gone, and the one of the restore prepared for the
    // next clone; the eight handed over still run.
    expect(vcpuThreads()).toBe(threadsBefore - 3 - 1);
    expect(handed.every((vm) => vm.vm.state === 'running')).toBe(true);
  });

  it('a direct factory boots, and a mismatching request falls back to a direct VM', async () => {
    const { factory } = await make({ template: false, cache: 0 });
    const vm = await factory.getVm(vmConfig());
    vms.push(vm);
    expect(vm.guest).toBe('probe');
    expect(vm.vm.state).toBe('running');
    const bigger = await factory.getVm({ hypervisorConfig: { ...vmConfig().hypervisorConfig, memorySize: 96 } });
    vms.push(bigger);
    expect(bigger.vm.state).toBe('running');
    expect((await bigger.agent.ping()).agent).toBe('nodevisor-probe');
  });

  it('the template\'s tmpfs is gone after close, also while clones still run', async () => {
    const { factory, statePath } = await make({ template: true, cache: 0 });
    const clone = await factory.getVm(vmConfig());
    vms.push(clone);
    await factory.close();
    expect(mountAt(readMountInfo(), statePath)).toBeUndefined();
    expect(existsSync(statePath)).toBe(false);
    // The clone maps the (now detached) memory file and keeps running.
    expect(await clone.agent.echo('after close')).toBe('after close');
  });

  it('after a hand-over the next clone\'s restore is prepared; close releases it before unmounting', async () => {
    const { factory, statePath } = await make({ template: true, cache: 0 });
    const memory = join(statePath, 'memory');
    const inode = statSync(memory).ino;
    const clone = await factory.getVm(vmConfig());
    await Vm.drainTeardown(); // also waits for the restore being prepared
    expect(mappingsOf(inode)).toBe(2); // the clone, and the restore prepared for the next one
    await clone.stop();
    await Vm.drainTeardown();
    expect(mappingsOf(inode)).toBe(1);
    const next = await factory.getVm(vmConfig()); // takes the prepared restore
    expect((await next.agent.ping()).agent).toBe('nodevisor-probe');
    await next.stop();
    await factory.close();
    await Vm.drainTeardown();
    // Nothing maps the template's memory file any more (a lazy unmount would have left it).
    expect(mappingsOf(inode)).toBe(0);
    expect(mountAt(readMountInfo(), statePath)).toBeUndefined();
  });

  it('fetchOnly finds the template another factory made, and its clones work', async () => {
    const { statePath } = await make({ template: true, cache: 0 });
    const fetched = await newFactory({ template: true, cache: 0, vmConfig: vmConfig(), statePath }, true);
    const vm = await fetched.getVm(vmConfig());
    vms.push(vm);
    expect((await vm.agent.ping()).agent).toBe('nodevisor-probe');
    // Not closed here: closing a fetched template removes it (Kata), which the maker does in afterEach.
  });
});
