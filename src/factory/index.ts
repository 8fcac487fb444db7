/** The VM factory (DESIGN §5, Kata B29-B39): the real hypervisor and tmpfs bound in. */
import type { RuntimeConfig } from '../config/types.js';
import { buildFactory, type Factory, type NewFactoryConfig } from './factory.js';
import { handleFactoryWith, processRuntime, type FactoryRuntime } from './handle-factory.js';
import { tmpfsStateFs } from './tmpfs.js';
import { vmHypervisor, type FactoryVmHandle } from './vm-hypervisor.js';

export { checkFactoryConfig, MAX_VM_CACHE_NUMBER } from './check-config.js';
export { Factory, RESEED_BYTES, type NewFactoryConfig } from './factory.js';
export { clearCurrentFactory, currentFactory, processRuntime, type FactoryRuntime } from './handle-factory.js';
export type { FactoryVm, GuestKind } from './hypervisor.js';
export { DEFAULT_TEMPLATE_PATH } from './template.js';
export type { FactoryVmConfig } from './vm-config.js';
export { FactoryVmHandle } from './vm-hypervisor.js';

/**
 * Kata's `NewFactory(ctx, config, fetchOnly)` on the real VMM: VMs are `Vm`s (the handles
 * carry `vm` and its `agent` client), the template lives on a tmpfs at `statePath`.
 */
export function newFactory(config: NewFactoryConfig, fetchOnly: boolean): Promise<Factory<FactoryVmHandle>> {
  return buildFactory(config, fetchOnly, { hypervisor: vmHypervisor(), stateFs: tmpfsStateFs });
}

/**
 * Kata's `HandleFactory(ctx, vci, runtimeConfig)`: load, else create, else no factory; never
 * rejects. Without a `runtime`, the factory is kept for this process (`currentFactory()`).
 */
export function handleFactory(runtime: FactoryRuntime | undefined, runtimeConfig: RuntimeConfig): Promise<void> {
  return handleFactoryWith(newFactory, runtime ?? processRuntime, runtimeConfig);
}
