/**
 * A Vm the application drops without stop() does not leak its threads: once the garbage
 * collector takes it, the handle's finalizer (native/addon/vm_binding.cc) stops the VM and joins
 * its vCPU and device-worker threads. Run in a child Node process with --expose-gc, so gc() can
 * be asked for and /proc/self/task holds only that VM's threads (besides the process-wide ones:
 * the spare-VM maker nv-prewarm and the teardown reapers nv-reaper*, which belong to no VM).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { needs, skipUnless } from '../helpers/needs.js';

const dist = join(import.meta.dirname, '..', '..', 'dist', 'src');

const program = `
  const { Vm } = await import(${JSON.stringify(join(dist, 'vm', 'vm.js'))});
  const { PHASE_READY, probeGuestPath } = await import(${JSON.stringify(join(dist, 'guest', 'probe.js'))});
  const fs = await import('node:fs');
  const threads = () => fs.readdirSync('/proc/self/task')
    .map((t) => { try { return fs.readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim(); } catch { return ''; } })
    .filter((n) => n.startsWith('nv-') && n !== 'nv-prewarm' && !n.startsWith('nv-reaper'))
    .sort();
  const result = {};
  await (async () => {
    // The only reference to the VM lives in this function's scope.
    const vm = await Vm.create({ kernel: probeGuestPath(), memoryMiB: 64, hotplugSlots: 1 });
    const ready = new Promise((resolve) => vm.on('phase', (p) => p.code === PHASE_READY && resolve()));
    await vm.start();
    await ready;
    result.running = threads();
  })();
  // Collect until the threads are gone, for at most 10 s (a bound on the event, not a timing).
  for (let i = 0; i < 100 && threads().length > 0; i++) {
    globalThis.gc();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  result.afterGc = threads();
  process.stdout.write(JSON.stringify(result));`;

describe('a dropped Vm', skipUnless('garbage-collecting a running VM', needs.kvm), () => {
  it("stops and joins its threads when it is garbage-collected, and does not keep the process alive", () => {
    const run = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', program], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    const result = JSON.parse(run.stdout) as { running: string[]; afterGc: string[] };
    expect(result.running).toEqual(['nv-blk', 'nv-console', 'nv-vcpu0']);
    expect(result.afterGc).toEqual([]);
  });
});
