/**
 * Tier 3: many create/start/stop cycles leave nothing behind (DESIGN §8: fds, threads, RSS flat).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { PHASE_READY, probeGuestPath } from '../../src/guest/probe.js';
import { Vm } from '../../src/vm/vm.js';
import { needs } from '../helpers/needs.js';

function rssKiB(): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line?.replace(/\D+/g, '') ?? 0);
}

const fds = (): number => readdirSync('/proc/self/fd').length;
const threads = (): number => readdirSync('/proc/self/task').length;

async function cycle(kernel: string): Promise<void> {
  const vm = await Vm.create({ kernel, memoryMiB: 32 });
  const ready = new Promise<void>((resolve) =>
    vm.on('phase', (phase) => {
      if (phase.code === PHASE_READY) resolve();
    }),
  );
  await vm.start();
  await ready;
  await vm.stop();
}

describe.skipIf(!needs.kvm.report('boot the probe guest 500 times'))('Vm create/start/stop cycles', () => {
  it('500 cycles keep fds, threads and RSS flat', async () => {
    const kernel = probeGuestPath();
    for (let i = 0; i < 30; i++) await cycle(kernel); // warm up: libuv pool, allocator arenas, JIT
    const before = { fds: fds(), threads: threads(), rss: rssKiB() };
    for (let i = 0; i < 500; i++) await cycle(kernel);
    const after = { fds: fds(), threads: threads(), rss: rssKiB() };
    expect(after.fds).toBeLessThanOrEqual(before.fds);
    expect(after.threads).toBeLessThanOrEqual(before.threads);
    // A leaked 32 MiB guest mapping per cycle would show as gigabytes; allow allocator noise.
    expect(after.rss - before.rss).toBeLessThan(16 * 1024);
  }, 120_000);
});
