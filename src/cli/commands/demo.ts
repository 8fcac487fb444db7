/**
 * `nodevisor demo`: boots the bundled probe guest in this process, streams its serial console,
 * prints how long create + start took until the guest said it was ready (phase 0x41), then
 * stops it. Exit code 0 when the guest got ready, 1 otherwise. `--pvh` starts the probe at its
 * PVH entry (as QEMU would) instead of nodevisor's CPL-3 user entry.
 */
import { PHASE_READY, probeGuestPath } from '../../guest/probe.js';
import { Vm, type VmExit } from '../../vm/vm.js';
import type { Command } from '../commands.js';

const READY_TIMEOUT_MS = 10_000;

const demo: Command = {
  async run(args) {
    const bootEntry = args.includes('--pvh') ? 'pvh' : 'auto';
    const kernel = probeGuestPath();
    process.stdout.write(`booting ${kernel} in this process (${bootEntry === 'pvh' ? 'PVH entry' : 'CPL-3 user entry'})\n`);
    process.stdout.write('--- guest console ---\n');

    const t0 = process.hrtime.bigint();
    const vm = await Vm.create({ kernel, memoryMiB: 64, bootEntry });
    const created = process.hrtime.bigint();
    vm.on('console', (data) => process.stdout.write(data));
    const outcome = new Promise<{ readyAt: bigint } | { exit: VmExit } | { timeout: true }>((resolve) => {
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
    await vm.start();
    const result = await outcome;
    await vm.stop();
    process.stdout.write('--- end of guest console ---\n');

    if ('readyAt' in result) {
      const ms = (to: bigint) => (Number(to - t0) / 1e6).toFixed(2);
      process.stdout.write(`create: ${ms(created)} ms; create + start -> ready (phase 0x41): ${ms(result.readyAt)} ms\n`);
      process.stdout.write('(a first VM in a fresh process also pays for loading the addon and opening /dev/kvm; `npm run bench` measures warm starts)\n');
      process.stdout.write('stopped the VM\n');
      return 0;
    }
    if ('exit' in result) {
      process.stderr.write(`the guest ended before it was ready: ${result.exit.reason}${result.exit.detail ? ` (${result.exit.detail})` : ''}\n`);
    } else {
      process.stderr.write(`the guest was not ready within ${READY_TIMEOUT_MS} ms\n`);
    }
    return 1;
  },
};

export default demo;
