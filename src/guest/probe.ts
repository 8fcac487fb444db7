/**
 * The probe guest (native/guest/probe): a freestanding PVH ELF built with the addon, booted by
 * tests, benchmarks and the demo. Its ports and commands are in native/guest/probe/README.md.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { NodevisorError } from '../errors.js';
import { packageRoot } from '../native/binding.js';

/** Wait-port words the probe understands (native/guest/probe/probe_abi.h). */
export const ProbeCommand = {
  exit: 1,
  count: 2,
  consoleInput: 3,
} as const;

/** Guest-physical address of the probe's 64-bit counter (COUNT mode). */
export const PROBE_COUNTER_GPA = 0x5000;
/** Where the probe reads the VM generation id (its ELF note names it; the VMM writes it there). */
export const PROBE_GENERATION_GPA = 0x5008;
export const PROBE_BANNER = 'nodevisor probe ready\n';
export const PHASE_STARTED = 0x40;
export const PHASE_READY = 0x41;

/** Path of the bundled probe ELF (build/Release/probe.elf, or Debug). */
export function probeGuestPath(): string {
  const root = packageRoot();
  const candidates = [join(root, 'build', 'Release', 'probe.elf'), join(root, 'build', 'Debug', 'probe.elf')];
  for (const path of candidates) if (existsSync(path)) return path;
  throw new NodevisorError(
    `the probe guest is not built (looked for ${candidates.join(', ')}); run \`npx node-gyp rebuild\``,
    { code: 'ENOENT', path: candidates[0] },
  );
}
