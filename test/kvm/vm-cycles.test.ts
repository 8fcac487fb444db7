/**
 * Tier 3: many create/start/stop cycles leave nothing behind (DESIGN §8: fds, threads, RSS flat).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { PHASE_READY, probeGuestPath } from '../../src/guest/probe.js';
import { Vm } from '../../src/vm/vm.js';
import { needs, skipUnless } from '../helpers/needs.js';

function rssKiB(): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line?.replace(/\D+/g, '') ?? 0);
}

const fds = (): number => readdirSync('/proc/self/fd').length;
const threads = (): number => readdirSync('/proc/self/task').length;

/** Fails with the stage and the VM's state instead of hanging the whole test. */
function within<T>(promise: Promise<T>, what: string, vm?: Vm): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      let state = 'unknown';
      try {
        state = vm?.state ?? 'none';
      } catch {
        // the handle is gone
      }
      reject(new Error(`${what} did not finish within 10 s (VM state ${state}, exit ${JSON.stringify(vm?.exitInfo)})`));
    }, 10_000);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

async function cycle(kernel: string): Promise<void> {
  const vm = await within(Vm.create({ kernel, memoryMiB: 32 }), 'create');
  const ready = new Promise<void>((resolve, reject) => {
    vm.on('phase', (phase) => {
      if (phase.code === PHASE_READY) resolve();
    });
    vm.on('exit', (exit) => reject(new Error(`the VM ended before ready: ${JSON.stringify(exit)}`)));
  });
  await within(vm.start(), 'start', vm);
  await within(ready, 'ready', vm);
  await within(vm.stop(), 'stop', vm);
}

describe('Vm create/start/stop cycles', skipUnless('boot the probe guest 500 times', needs.kvm), () => {
  it('500 cycles keep fds, threads and RSS flat', async () => {
    const kernel = probeGuestPath();
    for (let i = 0; i < 30; i++) await cycle(kernel); // warm up: libuv pool, allocator arenas, JIT
    await Vm.drainTeardown(); // stop() leaves the VM fd closes to the reaper threads
    const before = { fds: fds(), threads: threads(), rss: rssKiB() };
    for (let i = 0; i < 500; i++) await cycle(kernel);
    await Vm.drainTeardown();
    const after = { fds: fds(), threads: threads(), rss: rssKiB() };
    expect(after.fds).toBeLessThanOrEqual(before.fds);
    expect(after.threads).toBeLessThanOrEqual(before.threads);
    // A leaked 32 MiB guest mapping per cycle would show as gigabytes; allow allocator noise.
    expect(after.rss - before.rss).toBeLessThan(16 * 1024);
  }, 120_000);
});
