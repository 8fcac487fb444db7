/**
 * The cache factory (Kata B35): a pool of `count` paused VMs from a base factory (template
 * clones or direct boots), refilled in the background, in this process (Kata's VM-cache
 * server of B38, a unix socket handing VMs to other processes, is not needed: the pool lives
 * where the sandboxes are made).
 *
 * Kata runs `count` producer goroutines, each blocked sending its VM on an unbuffered channel.
 * The same accounting here: at most `count` VMs are either ready or being made; taking one
 * starts a replacement. Everything runs on the JS thread, so `getBaseVm` takes a VM out of the
 * pool in one synchronous step: no VM is handed out twice, however many calls wait.
 *
 * As in Kata, a producer that cannot make a VM closes the whole cache; later calls get
 * "cache factory is closed" with that failure as `cause`.
 */
import { NodevisorError } from '../errors.js';
import { logger } from '../log/logger.js';
import { stopQuietly, type FactoryBase } from './base.js';
import type { FactoryVm } from './hypervisor.js';
import type { CheckedFactoryVmConfig } from './vm-config.js';

interface Waiter<V> {
  resolve(vm: V): void;
  reject(err: Error): void;
}

export class CacheFactory<V extends FactoryVm> implements FactoryBase<V> {
  readonly #ready: V[] = [];
  readonly #waiters: Waiter<V>[] = [];
  readonly #producing = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;
  #failure: unknown;
  #refillScheduled = false;

  /**
   * `prepare` runs on each VM before it joins the pool (the factory makes it unique there, so
   * a hand-over only resumes it); the VM must be paused again when it resolves.
   */
  constructor(
    private readonly count: number,
    private readonly base: FactoryBase<V>,
    private readonly prepare?: (vm: V) => Promise<void>,
  ) {
    this.#refill();
  }

  /** Kata: the base factory's config. */
  config(): CheckedFactoryVmConfig {
    return this.base.config();
  }

  /** VMs ready in the pool now (for tests and benchmarks). */
  get readyCount(): number {
    return this.#ready.length;
  }

  /** Resolves once the pool holds `count` ready VMs (or rejects when the cache closes). */
  async filled(): Promise<void> {
    while (this.#ready.length < this.count) {
      if (this.#closing) throw this.#closedError();
      // Replacements not started yet (a refill scheduled for later, or a VM taken and never
      // followed by `prepareNext`) start now: there is always a producer to wait for.
      this.#refill();
      await Promise.race([...this.#producing]);
    }
  }

  /** Takes a paused VM out of the pool, or waits for the next one made. */
  getBaseVm(_config: CheckedFactoryVmConfig): Promise<V> {
    if (this.#closing) return Promise.reject(this.#closedError());
    const vm = this.takeReady();
    if (vm) {
      this.#refillSoon();
      return Promise.resolve(vm);
    }
    // A waiter is served by a producer: start the missing ones (a VM taken with `takeReady`
    // whose hand-over failed before `prepareNext`, for one), or it could wait for ever.
    this.#refill();
    return new Promise<V>((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * A paused VM from the pool when one is ready, without a turn of the microtask queue; else
   * undefined. Its replacement is started by `prepareNext`, which the caller calls once it has
   * handed the VM over (the factory does, on a tick after the hand-over).
   */
  takeReady(): V | undefined {
    if (this.#closing) return undefined;
    return this.#ready.shift();
  }

  /** A pooled VM was handed over: its replacement is started now. */
  prepareNext(): void {
    this.#refill();
  }

  /** Kata's CloseFactory, once: stop the producers, stop every VM not handed out, close the base. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = this.#closedError();
      for (const waiter of this.#waiters.splice(0)) waiter.reject(closed);
      await Promise.allSettled([...this.#producing]);
      await Promise.all(this.#ready.splice(0).map((vm) => stopQuietly(vm, 'cache closed')));
      await this.base.close();
    })();
    return this.#closing;
  }

  #closedError(): NodevisorError {
    return new NodevisorError('cache factory is closed', { code: 'ECLOSED', cause: this.#failure });
  }

  /**
   * Starts the replacement after the caller has its VM: starting a restore does some work on
   * this thread (opening and mapping the snapshot), which a hand-over should not wait for.
   */
  #refillSoon(): void {
    if (this.#refillScheduled) return;
    this.#refillScheduled = true;
    setImmediate(() => {
      this.#refillScheduled = false;
      this.#refill();
    });
  }

  #refill(): void {
    while (!this.#closing && this.#ready.length + this.#producing.size < this.count) {
      const producer: Promise<void> = this.#produce().finally(() => {
        this.#producing.delete(producer);
        this.#refill();
      });
      this.#producing.add(producer);
    }
  }

  async #produce(): Promise<void> {
    let vm: V | undefined;
    try {
      vm = await this.base.getBaseVm(this.base.config());
      await this.prepare?.(vm);
    } catch (err) {
      if (vm) await stopQuietly(vm, 'could not be prepared for the pool');
      logger('factory').error({ err }, 'cache cannot make a VM; closing the cache');
      this.#failure ??= err;
      void this.close();
      return;
    }
    if (this.#closing) {
      await stopQuietly(vm, 'cache closed while the VM was made');
      return;
    }
    this.base.prepareNext?.();
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(vm);
    else this.#ready.push(vm);
  }
}
