/** The bench's one-CPU confinement (src/bench/one-cpu.ts) on this process's real threads. */
import { describe, expect, it } from 'vitest';

import { onOneCpu } from '../../src/bench/one-cpu.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { threadCpus } from '../helpers/threads.js';

/** Cpus_allowed_list of every thread of this process. */
function everyThreadsCpus(): string[] {
  return threadCpus('').map((thread) => thread.allowed);
}

describe('onOneCpu', skipUnless('one-CPU confinement', needs.cpus(2), needs.command('taskset')), () => {
  it('runs the function with every thread on one CPU, then gives each thread the set back', async () => {
    const before = everyThreadsCpus();
    expect(new Set(before).size).toBe(1);
    const { cpu, value } = await onOneCpu(async () => everyThreadsCpus());
    expect(value.length).toBeGreaterThan(1); // the libuv and V8 threads, not only this one
    expect(value.every((cpus) => cpus === String(cpu))).toBe(true);
    expect(new Set(everyThreadsCpus())).toEqual(new Set(before));
  });

  it('gives the set back when the function throws', async () => {
    const [before] = everyThreadsCpus();
    await expect(onOneCpu(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(new Set(everyThreadsCpus())).toEqual(new Set([before]));
  });
});
