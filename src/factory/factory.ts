/**
 * `newFactory` and the `Factory` it returns (Kata B31 and B39): chooses the base factory
 * (template, direct) and wraps it in a cache when one is asked for; `getVm` hands over a
 * running VM that is unique (reseeded and time-synced, or for the probe guest a checked
 * generation), and falls back to a directly booted VM when the requested config does not fit
 * the factory's.
 *
 * Differences from Kata, and why:
 * - The fallback VM is handed over running, like every other; Kata returned it paused.
 * - A pooled VM is made unique when it joins the pool, and only resumed and time-synced when
 *   it is handed over (Kata resumed and reseeded at hand-over too).
 * - `vmCacheEndpoint` without a cache is refused: Kata's VM-cache client and server (B37, B38)
 *   are replaced by the in-process pool (`cache`); with a cache the endpoint is not used.
 * - `getVm` after `close` is an error instead of using a closed factory.
 */
import { randomBytes } from 'node:crypto';

import { invalid, NodevisorError, wrapError } from '../errors.js';
import { logger } from '../log/logger.js';
import { tracing, withSpan } from '../trace/tracing.js';
import { stopQuietly, type FactoryBase } from './base.js';
import { CacheFactory } from './cache.js';
import { MAX_VM_CACHE_NUMBER } from './check-config.js';
import { DirectFactory } from './direct.js';
import type { FactoryVm, Hypervisor, StateFs } from './hypervisor.js';
import { checkStatePath, DEFAULT_TEMPLATE_PATH, TemplateFactory } from './template.js';
import { checkFactoryVmConfig, vmConfigMismatch, type CheckedFactoryVmConfig, type FactoryVmConfig } from './vm-config.js';

/** Kata's `factory.Config`, with the in-process pool size as `cache`. */
export interface NewFactoryConfig {
  /** Make VMs as copy-on-write clones of one template VM. */
  template: boolean;
  /** Keep this many paused VMs ready (0: none). */
  cache: number;
  /** Kata's VM-cache socket; nodevisor's pool is in process (see the header). */
  vmCacheEndpoint?: string;
  vmConfig: FactoryVmConfig;
  /** Where the template lives (a tmpfs is mounted there); default /run/nodevisor/factory/template. */
  statePath?: string;
}

/** Bytes of host randomness sent to a clone's agent (Kata B39). */
export const RESEED_BYTES = 512;

/** What a factory is built on: the VMs and where the template lives. Tests pass fakes. */
export interface FactoryEnv<V extends FactoryVm> {
  hypervisor: Hypervisor<V>;
  stateFs: StateFs;
}

export class Factory<V extends FactoryVm = FactoryVm> {
  #closed: Promise<void> | undefined;

  /** @internal Use `newFactory`. */
  constructor(
    private readonly base: FactoryBase<V>,
    private readonly hypervisor: Hypervisor<V>,
  ) {}

  /** The config the factory's VMs are made from (defaults filled in). */
  config(): CheckedFactoryVmConfig {
    return this.base.config();
  }

  /** The base factory (direct, template or cache), for tests and benchmarks. */
  get baseFactory(): FactoryBase<V> {
    return this.base;
  }

  /**
   * Kata's `GetBaseVM`: a paused VM from the base factory, without the hand-over steps (a
   * template clone is not yet made unique; a pooled VM was, when it joined the pool).
   */
  getBaseVm(): Promise<V> {
    if (this.#closed) return Promise.reject(closedError());
    return this.base.getBaseVm(this.base.config());
  }

  /**
   * Kata B39: a running VM for `requested`. A config the factory's VMs do not fit gives a
   * directly booted VM (logged "fallback to direct factory vm"); otherwise a VM from the base
   * factory is resumed and made unique, and stopped if any of that fails.
   */
  getVm(requested: FactoryVmConfig): Promise<V> {
    // The pool's hand-over, when no tracer records it and the factory's VMs fit the request:
    // no span and no async function, whose bookkeeping was a third of a hand-over's time on
    // the JS thread (~25 of ~75 µs p50, measured in one process against this path).
    if (!this.#closed && this.base.takeReady !== undefined && !tracing() && this.#served(requested)) {
      const vm = this.base.takeReady();
      if (vm !== undefined) return this.#handOverPooled(vm);
    }
    return this.#getVmInSpan(requested);
  }

  /**
   * Whether the factory's VMs fit `requested`. An invalid config, or one they do not fit, is
   * not served here: `#getVmInSpan` gives its error or its fallback, logged, in a span.
   */
  #served(requested: FactoryVmConfig): boolean {
    try {
      return this.#fit(requested).mismatch === undefined;
    } catch {
      return false;
    }
  }

  /**
   * `requested` checked, and why the factory's VMs do not fit it (undefined: they do). The
   * factory's own config (what `config()` returns) fits by definition: not checked again.
   * Throws for an invalid config.
   */
  #fit(requested: FactoryVmConfig): { checked: CheckedFactoryVmConfig; mismatch: string | undefined } {
    const own = this.base.config();
    if (requested === own) return { checked: own, mismatch: undefined };
    const checked = checkFactoryVmConfig(requested, 'requested VM config');
    return { checked, mismatch: vmConfigMismatch(checked, own) };
  }

  /** `getVm` in a span; `taken` is a pooled VM `getVm` took already (its config is the factory's). */
  #getVmInSpan(requested: FactoryVmConfig, taken?: V): Promise<V> {
    return withSpan('GetVM', { subsystem: 'factory' }, async () => {
      let vm = taken;
      let running = false;
      if (vm === undefined) {
        if (this.#closed) throw closedError();
        const { checked, mismatch } = this.#fit(requested);
        if (mismatch) {
          logger('factory').info({ reason: mismatch }, 'fallback to direct factory vm');
          return this.hypervisor.boot(checked);
        }
        const own = this.base.config();
        // A template clone comes running (its uniqueness check may be on its way already); any
        // other base VM is paused and resumed here.
        running = this.base.getRunningVm !== undefined;
        // A ready pooled VM is taken at once: an await costs a turn of the microtask queue.
        vm = running ? await this.base.getRunningVm!(own) : (this.base.takeReady?.() ?? (await this.base.getBaseVm(own)));
      }
      try {
        // The request that makes a clone unique goes out before a resume: the guest finds it as
        // it wakes, and still sees the resume first, then the request (B39's order). A probe
        // clone restored running got it with its restore already (vm-hypervisor.ts).
        const unique = madeUnique.has(vm) ? undefined : makeUnique(vm);
        unique?.catch(() => undefined); // awaited below; a failed resume must not leave it unhandled
        if (!running) await vm.resume();
        // Only what is there is awaited: each await is a turn of the microtask queue.
        if (unique) await unique;
        if (vm.guest === 'agent') await syncTime(vm);
      } catch (err) {
        return this.#handOverFailed(vm, err);
      }
      // The next VM is prepared once the caller has this one: a tick runs after the promise
      // continuations queued now, the caller's among them (a setImmediate costs the hand-over
      // more: it arms the loop's check handle).
      process.nextTick(() => this.#prepareNext());
      return vm;
    });
  }

  /**
   * A VM `getVm` took from the pool, handed over. A probe VM made unique when it joined the
   * pool needs only its resume, which the addon does at once (the promise it returns is
   * settled): the VM is handed over one promise job later. Anything more (a Linux guest's
   * time sync) goes the way in a span.
   */
  #handOverPooled(vm: V): Promise<V> {
    if (vm.guest === 'agent' || !madeUnique.has(vm)) return this.#getVmInSpan(this.base.config(), vm);
    let resumed: Promise<void>;
    try {
      resumed = vm.resume();
    } catch (err) {
      resumed = Promise.reject(err);
    }
    return resumed.then(
      () => {
        // The next VM is prepared on a tick (after the microtask queue drains: a burst of
        // getVm calls in a row is served before any replacement work), queued two promise
        // jobs from now, when the caller already has its VM: settling the promise returned
        // below queues the caller's continuation after the first of them. Queued here, the
        // tick cost the hand-over ~10 µs more at p50 and ~25 µs at p90 (Node's tick queue is
        // cold code when the thread just woke); run on the second job itself, the
        // replacement's work landed inside the next hand-over of a burst (p50 25 → 100 µs).
        void Promise.resolve()
          .then(() => undefined)
          .then(() => process.nextTick(() => this.#prepareNext()));
        return vm;
      },
      (err: unknown) => this.#handOverFailed(vm, err),
    );
  }

  /**
   * A VM that could not be handed over is stopped, and the base makes the next one (this one
   * left the pool, or used the template's prepared restore); the error names it.
   */
  async #handOverFailed(vm: V, err: unknown): Promise<never> {
    await stopQuietly(vm, 'hand-over failed');
    this.#prepareNext();
    throw wrapError(`cannot hand over VM ${vm.id}`, err);
  }

  /** The base makes its next VM ahead, unless the factory was closed since. */
  #prepareNext(): void {
    if (!this.#closed) this.base.prepareNext?.();
  }

  /** Kata's `CloseFactory`, once: the base factory's close (pool VMs stopped, template removed). */
  close(): Promise<void> {
    this.#closed ??= this.base.close();
    return this.#closed;
  }
}

function closedError(): NodevisorError {
  return new NodevisorError('the VM factory is closed', { code: 'ECLOSED' });
}

/** Pooled VMs made unique before they joined the pool (`prepareForPool`). */
const madeUnique = new WeakSet<FactoryVm>();

/**
 * Kata B39 step 2: the Linux agent gets fresh randomness, so clones do not share RNG state. The
 * probe guest has no RNG; it re-reads a per-VM generation after a restore, and a clone still
 * showing the template's would not be unique.
 */
async function makeUnique(vm: FactoryVm): Promise<void> {
  if (vm.guest === 'agent') {
    await vm.agent.rngReseed(randomBytes(RESEED_BYTES));
    return;
  }
  if (vm.templateGeneration !== undefined) {
    const generation = await vm.generation();
    if (generation === vm.templateGeneration) {
      throw new NodevisorError(`the clone still reports the template's generation ${generation}`, { code: 'ENOTUNIQUE' });
    }
  }
}

/** Kata B39 step 3, at hand-over, for the Linux agent: the host's time (a pooled VM may have waited paused for long). */
async function syncTime(vm: FactoryVm): Promise<void> {
  await vm.agent.timeSync(new Date());
}

/**
 * A VM joining the pool is made unique there (resumed, reseeded or its generation checked,
 * paused again), so taking it from the pool costs a resume and a time sync, not a round trip
 * per step. Kata did all of it at hand-over.
 */
async function prepareForPool(vm: FactoryVm): Promise<void> {
  await vm.resume();
  await makeUnique(vm);
  await vm.pause();
  madeUnique.add(vm);
}

function checkFactoryOptions(config: NewFactoryConfig): { cache: number; statePath: string; endpoint: string } {
  if (typeof config !== 'object' || config === null) throw invalid('newFactory needs a config object');
  if (typeof config.template !== 'boolean') throw invalid(`factory template must be a boolean, got ${JSON.stringify(config.template)}`);
  const cache = config.cache ?? 0;
  if (!Number.isInteger(cache) || cache < 0 || cache > MAX_VM_CACHE_NUMBER) {
    throw invalid(`factory cache must be an integer from 0 to ${MAX_VM_CACHE_NUMBER}, got ${JSON.stringify(config.cache)}`);
  }
  const endpoint = config.vmCacheEndpoint ?? '';
  if (typeof endpoint !== 'string') throw invalid(`vmCacheEndpoint must be a string, got ${JSON.stringify(endpoint)}`);
  return { cache, endpoint, statePath: checkStatePath(config.statePath ?? DEFAULT_TEMPLATE_PATH) };
}

/**
 * Kata B31 on an explicit environment (the real one is `newFactory` in `index.ts`; unit tests
 * pass a fake hypervisor). Steps, in Kata's order: check the VM config (defaults filled in on a
 * copy); refuse `fetchOnly` with a cache; pick the base — a template (fetched or made), else
 * direct; wrap it in a cache when `cache > 0`.
 */
export function buildFactory<V extends FactoryVm>(
  config: NewFactoryConfig,
  fetchOnly: boolean,
  env: FactoryEnv<V>,
): Promise<Factory<V>> {
  return withSpan('NewFactory', { subsystem: 'factory' }, async () => {
    const { cache, endpoint, statePath } = checkFactoryOptions(config);
    const vmConfig = checkFactoryVmConfig(config.vmConfig);
    if (fetchOnly && cache > 0) throw new NodevisorError('cache factory does not support fetch', { code: 'ENOTSUP' });
    let base: FactoryBase<V>;
    if (config.template) {
      base = fetchOnly
        ? await TemplateFactory.fetch(env.hypervisor, env.stateFs, vmConfig, statePath)
        : await TemplateFactory.create(env.hypervisor, env.stateFs, vmConfig, statePath);
    } else if (endpoint !== '' && cache === 0) {
      throw new NodevisorError(
        `a VM cache server (${endpoint}) is not supported: nodevisor keeps the VM pool in this process; set cache to the pool size instead`,
        { code: 'ENOTSUP' },
      );
    } else {
      base = new DirectFactory(env.hypervisor, vmConfig);
    }
    if (cache > 0) base = new CacheFactory(cache, base, prepareForPool);
    return new Factory(base, env.hypervisor);
  });
}
