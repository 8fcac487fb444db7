/**
 * `nodevisor demo` (`npm run demo`): boots the bundled probe guest in this process, streams its
 * serial console, prints how long create + start took until the guest said it was ready (phase
 * 0x41), then shows the two other things a sandbox does: an agent round trip over the
 * virtio-console channel (ping) and a disk hot-plug — a small temporary image file, attached
 * while the guest runs, read back by the guest by its serial (disk.checksum), compared with the
 * host's CRC-32, detached and removed. Stops the VM. Exit code 0 when every step worked, 1
 * otherwise. `--pvh` starts the probe at its PVH entry (as QEMU would) instead of nodevisor's
 * CPL-3 user entry. Runs on the JS thread; every VM call that can wait is async.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

import { AgentClient } from '../../agent/client.js';
import { PHASE_READY, probeGuestPath } from '../../guest/probe.js';
import { Vm, type VmExit } from '../../vm/vm.js';
import type { Command } from '../commands.js';

const READY_TIMEOUT_MS = 10_000;
const AGENT_TIMEOUT_MS = 10_000;
const DISK_BYTES = 256 * 1024;
const DISK_SERIAL = 'demo-disk';

const ms = (from: bigint, to: bigint = process.hrtime.bigint()): string => (Number(to - from) / 1e6).toFixed(2);

/** Waits for phase 0x41, or the guest's exit, or the timeout. */
function readyOrEnd(vm: Vm): Promise<{ readyAt: bigint } | { exit: VmExit } | { timeout: true }> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ timeout: true }), READY_TIMEOUT_MS);
    vm.on('phase', (phase) => {
      if (phase.code === PHASE_READY) {
        clearTimeout(timer);
        resolve({ readyAt: process.hrtime.bigint() });
      }
    });
    vm.on('exit', (exit) => {
      clearTimeout(timer);
      resolve({ exit });
    });
  });
}

/** The agent round trip and the disk hot-plug, printed step by step. Throws on a failed step. */
async function agentAndDisk(vm: Vm, say: (line: string) => void): Promise<void> {
  const agent = new AgentClient(vm.agent, { timeoutMs: AGENT_TIMEOUT_MS });
  let t = process.hrtime.bigint();
  const pong = await agent.ping();
  say(`agent ping over virtio-console: ${pong.agent} answered in ${ms(t)} ms`);

  const dir = await mkdtemp(join(tmpdir(), 'nodevisor-demo-'));
  try {
    const image = join(dir, 'disk.img');
    const bytes = randomBytes(DISK_BYTES);
    await writeFile(image, bytes);
    t = process.hrtime.bigint();
    const slot = await vm.attachDisk({ path: image, serial: DISK_SERIAL, readOnly: true });
    say(`hot-plugged ${image} (${DISK_BYTES / 1024} KiB, serial ${DISK_SERIAL}) into slot ${slot} in ${ms(t)} ms`);
    t = process.hrtime.bigint();
    const guestCrc = await agent.diskChecksum(DISK_SERIAL, 0, DISK_BYTES);
    const hostCrc = crc32(bytes);
    const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;
    say(`agent disk.checksum: the guest read the whole disk in ${ms(t)} ms, CRC-32 ${hex(guestCrc)} (host: ${hex(hostCrc)})`);
    if (guestCrc !== hostCrc) throw new Error('the guest read other bytes than the host wrote');
    await vm.detachDisk(slot);
    say(`detached slot ${slot}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const demo: Command = {
  async run(args) {
    const bootEntry = args.includes('--pvh') ? 'pvh' : 'auto';
    const kernel = probeGuestPath();
    const say = (line: string) => process.stdout.write(`${line}\n`);
    say(`booting ${kernel} in this process (${bootEntry === 'pvh' ? 'PVH entry' : 'CPL-3 user entry'})`);
    say('--- guest console ---');

    const t0 = process.hrtime.bigint();
    const vm = await Vm.create({ kernel, memoryMiB: 64, bootEntry, hotplugSlots: 1 });
    const created = process.hrtime.bigint();
    vm.on('console', (data) => process.stdout.write(data));
    const outcome = readyOrEnd(vm);
    try {
      await vm.start();
      const result = await outcome;
      if (!('readyAt' in result)) {
        say('--- end of guest console ---');
        if ('exit' in result) {
          process.stderr.write(`the guest ended before it was ready: ${result.exit.reason}${result.exit.detail ? ` (${result.exit.detail})` : ''}\n`);
        } else {
          process.stderr.write(`the guest was not ready within ${READY_TIMEOUT_MS} ms\n`);
        }
        return 1;
      }
      say('--- end of guest console ---');
      say(`create: ${ms(t0, created)} ms; create + start -> ready (phase 0x41): ${ms(t0, result.readyAt)} ms`);
      say('(a first VM in a fresh process also pays for loading the addon and opening /dev/kvm; `npm run bench` measures warm starts)');
      try {
        await agentAndDisk(vm, say);
      } catch (err) {
        const e = err as { message?: string; code?: string };
        process.stderr.write(`demo step failed: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}\n`);
        return 1;
      }
      return 0;
    } finally {
      await vm.stop();
      say('stopped the VM');
    }
  },
};

export default demo;
