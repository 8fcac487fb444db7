/**
 * The three base factories (direct, template, cache; Kata's `base.FactoryBase`) share this
 * shape. `getBaseVm` resolves a **paused** VM that nobody else holds; the top-level factory
 * (`factory.ts`) resumes it and makes it unique before handing it over (B39).
 */
import { logger } from '../log/logger.js';
import type { FactoryVm } from './hypervisor.js';
import type { CheckedFactoryVmConfig } from './vm-config.js';

export interface FactoryBase<V extends FactoryVm = FactoryVm> {
  /** The config this factory makes VMs from, defaults filled in. */
  config(): CheckedFactoryVmConfig;
  getBaseVm(config: CheckedFactoryVmConfig): Promise<V>;
  /**
   * What `getVm` hands over when the base can make it in one step: a VM already running (the
   * template: a clone restored running). Without it, `getVm` resumes a `getBaseVm` VM.
   */
  getRunningVm?(config: CheckedFactoryVmConfig): Promise<V>;
  /** A paused VM that is ready now (the pool's), handed out at once; undefined when there is none. */
  takeReady?(): V | undefined;
  /**
   * A VM from this base was just handed over (or joined a pool): the base may now make the
   * next one ahead, in the background, without competing with that VM's start for a CPU.
   */
  prepareNext?(): void;
  /** Releases what the factory holds (pooled VMs, the template's tmpfs). Never rejects. */
  close(): Promise<void>;
}

/** Stops a VM on a path that is already failing or closing: a second error is logged, not thrown. */
export async function stopQuietly(vm: FactoryVm, why: string): Promise<void> {
  try {
    await vm.stop();
  } catch (err) {
    logger('factory').warn({ err, vm: vm.id, why }, 'cannot stop a factory VM');
  }
}
