/**
 * Checks the VM factory options when a runtime config is loaded (Kata B29, adapted to
 * nodevisor's factory, DESIGN §5), so a bad combination fails early with a clear error
 * instead of when the first sandbox starts.
 */
import { isAbsolute } from 'node:path';

import type { FactoryConfig, HypervisorConfig } from '../config/types.js';
import { invalid } from '../errors.js';

/** Pools larger than this would pin more guest memory than a host should give one process. */
export const MAX_VM_CACHE_NUMBER = 4096;

export function checkFactoryConfig(factory: FactoryConfig, hypervisor: HypervisorConfig): void {
  if (typeof factory !== 'object' || factory === null) throw invalid('factoryConfig must be an object');
  if (typeof factory.template !== 'boolean') {
    throw invalid(`factoryConfig.template must be a boolean, got ${JSON.stringify(factory.template)}`);
  }
  const count = factory.vmCacheNumber;
  if (!Number.isInteger(count) || count < 0 || count > MAX_VM_CACHE_NUMBER) {
    throw invalid(`factoryConfig.vmCacheNumber must be an integer from 0 to ${MAX_VM_CACHE_NUMBER}, got ${JSON.stringify(count)}`);
  }
  if (typeof factory.vmCacheEndpoint !== 'string') {
    throw invalid(`factoryConfig.vmCacheEndpoint must be a string, got ${JSON.stringify(factory.vmCacheEndpoint)}`);
  }
  if (factory.vmCacheEndpoint !== '' && !isAbsolute(factory.vmCacheEndpoint)) {
    throw invalid(`factoryConfig.vmCacheEndpoint must be an absolute socket path, got ${JSON.stringify(factory.vmCacheEndpoint)}`);
  }
  if (!factory.template && count === 0) return;

  if (factory.template && count > 0) throw invalid('VM factory cannot work together with VM cache');
  if (typeof hypervisor?.kernelPath !== 'string' || hypervisor.kernelPath === '') {
    throw invalid('the VM factory needs hypervisorConfig.kernelPath (Missing kernel path)');
  }
  if (factory.template) checkTemplateImage(hypervisor);
}

/** A template's clones would all write to one rootfs image, corrupting it: refused. */
export function checkTemplateImage(hypervisor: Pick<HypervisorConfig, 'imagePath'>): void {
  if (hypervisor.imagePath) {
    throw invalid(
      'Factory option template cannot be used with hypervisorConfig.imagePath: clones would share one writable ' +
        'rootfs image; boot the template from an initrd (initrdPath) or from an ELF kernel without an image',
    );
  }
}
