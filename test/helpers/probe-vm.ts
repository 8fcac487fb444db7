/**
 * A probe-guest VM started and ready (its phase 0x41 seen), for the kvm-tier tests: 64 MiB
 * unless `config` says otherwise.
 */
import { PHASE_READY, probeGuestPath } from '../../src/guest/probe.js';
import { Vm, type VmConfig } from '../../src/vm/vm.js';

export async function bootProbe(config: Partial<VmConfig> = {}): Promise<Vm> {
  const vm = await Vm.create({ kernel: probeGuestPath(), memoryMiB: 64, ...config });
  const ready = new Promise<void>((resolve) => vm.on('phase', (p) => p.code === PHASE_READY && resolve()));
  await vm.start();
  await ready;
  return vm;
}
