/**
 * A fake hypervisor for the factory's unit tests (Kata's runtime-rs lesson: have one). VMs are
 * plain objects that record every call in one shared journal; snapshots are real files in a
 * real directory, so the template's file checks (B33) run against the file system. The kvm tier
 * (test/kvm/factory.test.ts) runs the same factory on the real VMM.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';

import { NodevisorError } from '../../src/errors.js';
import type { FactoryVm, GuestKind, Hypervisor, StateFs, TemplateInfo } from '../../src/factory/hypervisor.js';
import type { CheckedFactoryVmConfig } from '../../src/factory/vm-config.js';
import { rootLogger, setLogger } from '../../src/log/logger.js';

export type FakeOp = 'boot' | 'pause' | 'resume' | 'snapshot' | 'stop' | 'restore' | 'rngReseed' | 'timeSync' | 'generation' | 'forget' | 'prepareRestore';

export class FakeVm implements FactoryVm {
  state: 'running' | 'paused' | 'stopped';
  readonly seeds: Buffer[] = [];
  readonly times: Date[] = [];
  readonly agent;

  constructor(
    private readonly hv: FakeHypervisor,
    readonly id: string,
    readonly guest: GuestKind,
    readonly config: CheckedFactoryVmConfig | undefined,
    state: 'running' | 'paused',
    public currentGeneration: string,
    readonly templateGeneration?: string,
  ) {
    this.state = state;
    this.agent = {
      rngReseed: async (seed: Buffer) => {
        await this.guestRuns();
        await this.hv.step('rngReseed', this);
        this.seeds.push(seed);
      },
      timeSync: async (now: Date) => {
        await this.guestRuns();
        await this.hv.step('timeSync', this);
        this.times.push(now);
      },
    };
  }

  readonly #waiting: (() => void)[] = [];

  /** As on the real agent channel, a request to a paused guest is answered once it runs. */
  private async guestRuns(): Promise<void> {
    while (this.state === 'paused') await new Promise<void>((resolve) => this.#waiting.push(resolve));
    if (this.state === 'stopped') throw new NodevisorError('the agent channel closed', { code: 'ECLOSED' });
  }

  #wake(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }

  async pause(): Promise<void> {
    await this.hv.step('pause', this);
    this.state = 'paused';
  }

  async resume(): Promise<void> {
    await this.hv.step('resume', this);
    this.state = 'running';
    this.#wake();
  }

  async snapshot(dir: string): Promise<void> {
    if (this.state !== 'paused') throw new NodevisorError('snapshot needs a paused VM', { code: 'EBUSY' });
    await this.hv.step('snapshot', this);
    await writeFile(join(dir, 'memory'), Buffer.alloc(4096));
    await writeFile(join(dir, 'state'), JSON.stringify({ id: this.id, generation: this.currentGeneration }));
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.#wake();
    await this.hv.step('stop', this);
  }

  async generation(): Promise<string> {
    await this.guestRuns();
    await this.hv.step('generation', this);
    return this.currentGeneration;
  }
}

/** Each op can be made to fail (`failOn`) or to take time (`delayMs`). */
export class FakeHypervisor implements Hypervisor<FakeVm> {
  readonly journal: string[] = [];
  readonly vms: FakeVm[] = [];
  guest: GuestKind = 'agent';
  /** Clones keep the template's generation (a guest that did not notice the restore). */
  clonesKeepGeneration = false;
  delayMs: Partial<Record<FakeOp, number>> = {};
  private readonly failures = new Map<FakeOp, { error: Error; times: number }>();
  private generations = 0x100;
  private nextGeneration(): string {
    return (++this.generations).toString(16).padStart(16, '0');
  }
  private ids = 0;

  /** The next `times` calls of `op` reject with `error` (default: every call). */
  failOn(op: FakeOp, error: Error = new Error(`${op} failed`), times = Infinity): void {
    this.failures.set(op, { error, times });
  }

  async step(op: FakeOp, vm: FakeVm | undefined): Promise<void> {
    this.journal.push(vm ? `${op} ${vm.id}` : op);
    const delay = this.delayMs[op];
    if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
    const failure = this.failures.get(op);
    if (failure && failure.times > 0) {
      failure.times--;
      throw failure.error;
    }
  }

  async boot(config: CheckedFactoryVmConfig): Promise<FakeVm> {
    const entry = this.journal.length; // step's line; others may follow it before it is named
    await this.step('boot', undefined);
    const vm = new FakeVm(this, `vm${++this.ids}`, this.guest, config, 'running', this.nextGeneration());
    this.vms.push(vm);
    this.journal[entry] = `boot ${vm.id}`;
    return vm;
  }

  async restore(dir: string, template: TemplateInfo, options: { running?: boolean } = {}): Promise<FakeVm> {
    const entry = this.journal.length;
    await this.step('restore', undefined);
    await readFile(join(dir, 'memory'));
    await readFile(join(dir, 'state'));
    const generation = this.clonesKeepGeneration && template.generation !== undefined ? template.generation : this.nextGeneration();
    const state = options.running ? 'running' : 'paused';
    const vm = new FakeVm(this, `vm${++this.ids}`, template.guest, template.config, state, generation, template.generation);
    this.vms.push(vm);
    this.journal[entry] = `restore ${vm.id}`;
    return vm;
  }

  /** Directories `forget` was called with, in order. */
  readonly forgotten: string[] = [];

  /** Directories `prepareRestore` was called with, in order. */
  readonly prepared: string[] = [];

  prepareRestore(dir: string): void {
    this.journal.push('prepareRestore');
    this.prepared.push(dir);
  }

  async forget(dir: string): Promise<void> {
    await this.step('forget', undefined);
    this.forgotten.push(dir);
  }

  live(): FakeVm[] {
    return this.vms.filter((vm) => vm.state !== 'stopped');
  }
}

/** A StateFs on a plain directory, recording what it was asked. */
export class DirStateFs implements StateFs {
  readonly prepared: { path: string; sizeMiB: number }[] = [];
  readonly removed: string[] = [];
  prepareError: Error | undefined;

  async prepare(path: string, sizeMiB: number): Promise<void> {
    if (this.prepareError) throw this.prepareError;
    this.prepared.push({ path, sizeMiB });
    await mkdir(path, { recursive: true, mode: 0o700 });
  }

  async remove(path: string): Promise<void> {
    this.removed.push(path);
    await rm(path, { recursive: true, force: true });
  }
}

/** Runs `fn` with the factory's log lines collected (pino JSON records). */
export async function withLogLines<T>(fn: (lines: Record<string, unknown>[]) => Promise<T>): Promise<T> {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      cb();
    },
  });
  const before = rootLogger();
  setLogger(pino({ level: 'debug' }, sink));
  try {
    return await fn(lines);
  } finally {
    setLogger(before);
  }
}

/** A turn of the event loop: a factory asks for the next clone's restore then, after a hand-over. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
