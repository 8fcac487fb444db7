/**
 * `nodevisor info`: what this installation is and what this machine offers it. Prints JSON
 * with `--json`.
 */
import { access, constants, readFile } from 'node:fs/promises';

import { addon } from '../../native/binding.js';
import { isolationSupport } from '../../sandbox/support.js';
import type { Command } from '../commands.js';

async function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  try {
    await access(path, mode);
    return true;
  } catch {
    return false;
  }
}

export async function machineInfo() {
  const kvm = await exists('/dev/kvm', constants.R_OK | constants.W_OK);
  const pvm = await exists('/sys/module/kvm_pvm');
  const kernel = (await readFile('/proc/sys/kernel/osrelease', 'utf8').catch(() => 'unknown')).trim();
  return {
    node: process.version,
    kernel,
    root: process.getuid?.() === 0,
    kvm,
    kvmFlavour: !kvm ? 'none' : pvm ? 'kvm_pvm (guest CPL 0 emulated; Linux guests boot only partly)' : 'hardware',
  };
}

const info: Command = {
  async run(args) {
    const build = addon().buildInfo();
    const machine = await machineInfo();
    const isolation = await isolationSupport();
    if (args.includes('--json')) {
      process.stdout.write(`${JSON.stringify({ build, machine, isolation }, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(
      [
        `nodevisor ${build.version} (addon: N-API ${build.napiVersion}, gcc ${build.compiler}, C++${String(build.cplusplus).slice(2, 4)}` +
          `${build.sanitizers ? `, sanitizers: ${build.sanitizers}` : ''})`,
        `node ${machine.node} on Linux ${machine.kernel}${machine.root ? ' as root' : ''}`,
        `KVM: ${machine.kvm ? machine.kvmFlavour : 'not available (/dev/kvm missing or not accessible)'}`,
        ...isolation.map((i) => `sandbox isolation '${i.isolation}': ${i.ok ? 'yes' : 'no'}${i.detail ? ` (${i.detail})` : ''}`),
        '',
      ].join('\n'),
    );
    return 0;
  },
};

export default info;
