/**
 * `handleFactory` (Kata B6): at runtime start, load the VM factory a previous process made, or
 * make one, or go on without; it never throws. The factory it sets is the one sandbox creation
 * takes its VMs from (`currentFactory()`).
 *
 * nodevisor's pool lives in this process, so the factory's `cache` is `vmCacheNumber` (Kata's
 * runtime set it to 0 and was a client of the `kata-runtime factory init` process). A cache
 * cannot be fetched, so with one the first step always fails and a new factory is made, as in
 * Kata.
 */
import type { RuntimeConfig } from '../config/types.js';
import { logger } from '../log/logger.js';
import type { Factory, NewFactoryConfig } from './factory.js';
import type { FactoryVm } from './hypervisor.js';

/** Kata's `vci.SetFactory`: what keeps the factory for the sandboxes made after. */
export interface FactoryRuntime {
  setFactory(factory: Factory<FactoryVm>): void;
}

let current: Factory<FactoryVm> | undefined;

/** The runtime of this process: keeps one factory at module level. */
export const processRuntime: FactoryRuntime = {
  setFactory(factory) {
    const previous = current;
    current = factory;
    if (previous && previous !== factory) {
      // A second handleFactory replaces the first factory; its pooled VMs and template go.
      previous.close().catch((err: unknown) => logger('factory').warn({ err }, 'cannot close the replaced vm factory'));
    }
  },
};

/** The factory sandbox creation uses, if one was set. */
export function currentFactory(): Factory<FactoryVm> | undefined {
  return current;
}

/** Forgets the current factory without closing it (the caller owns it then). For tests and shutdown. */
export function clearCurrentFactory(): Factory<FactoryVm> | undefined {
  const previous = current;
  current = undefined;
  return previous;
}

export type MakeFactory = (config: NewFactoryConfig, fetchOnly: boolean) => Promise<Factory<FactoryVm>>;

/**
 * Kata B6, with the factory maker passed in (`index.ts` binds the real `newFactory`). Resolves
 * once the factory is set, or once it is known there will be none.
 */
export async function handleFactoryWith(
  makeFactory: MakeFactory,
  runtime: FactoryRuntime,
  runtimeConfig: RuntimeConfig,
): Promise<void> {
  const log = logger('factory');
  try {
    const fc = runtimeConfig.factoryConfig;
    if (!fc || (!fc.template && !(fc.vmCacheNumber > 0))) return;
    const config: NewFactoryConfig = {
      template: fc.template,
      cache: fc.vmCacheNumber,
      vmCacheEndpoint: fc.vmCacheEndpoint,
      vmConfig: { hypervisorConfig: runtimeConfig.hypervisorConfig },
    };
    log.info('load vm factory');
    let factory: Factory<FactoryVm>;
    try {
      factory = await makeFactory(config, true);
    } catch (err) {
      log.warn({ err }, 'load vm factory failed, about to create new one');
      try {
        factory = await makeFactory(config, false);
      } catch (createErr) {
        log.warn({ err: createErr }, 'create vm factory failed');
        return;
      }
    }
    runtime.setFactory(factory);
  } catch (err) {
    // Kata's HandleFactory cannot fail; neither may this (a bad runtimeConfig, a throwing runtime).
    log.warn({ err }, 'vm factory not set');
  }
}
