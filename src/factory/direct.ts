/**
 * The direct factory (Kata B34): every VM is a fresh boot, paused before it is handed to the
 * top-level factory. Closing it releases nothing.
 */
import { wrapError } from '../errors.js';
import { stopQuietly, type FactoryBase } from './base.js';
import type { FactoryVm, Hypervisor } from './hypervisor.js';
import type { CheckedFactoryVmConfig } from './vm-config.js';

export class DirectFactory<V extends FactoryVm> implements FactoryBase<V> {
  constructor(
    private readonly hypervisor: Hypervisor<V>,
    private readonly vmConfig: CheckedFactoryVmConfig,
  ) {}

  config(): CheckedFactoryVmConfig {
    return this.vmConfig;
  }

  async getBaseVm(config: CheckedFactoryVmConfig): Promise<V> {
    const vm = await this.hypervisor.boot(config);
    try {
      await vm.pause();
    } catch (err) {
      await stopQuietly(vm, 'pause failed');
      throw wrapError(`cannot pause the new VM ${vm.id}`, err);
    }
    return vm;
  }

  async close(): Promise<void> {}
}
