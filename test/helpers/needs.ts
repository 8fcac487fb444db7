/**
 * What a test tier needs, detected once, with the reason printed when it is missing.
 * Use as `describe.skipIf(!needs.root.ok)(...)` after `needs.root.report('what the tests do')`.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

export interface Need {
  ok: boolean;
  reason: string;
  /** Prints why the tests that need this are skipped, when they are. Returns `ok`. */
  report(what: string): boolean;
}

function need(ok: boolean, reason: string): Need {
  return {
    ok,
    reason,
    report(what: string) {
      if (!ok) console.warn(`[skip] ${what}: ${reason}`);
      return ok;
    },
  };
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const needs = {
  linux: need(process.platform === 'linux', `needs Linux (this is ${process.platform})`),
  root: need(isRoot(), 'needs root (namespaces, mounts, loop devices)'),
  kvm: need(kvmUsable(), '/dev/kvm is missing or not read-writable by this user'),
  /** Hardware-virtualized KVM; on kvm_pvm only CPL 3 guest code runs natively (DESIGN §6). */
  hardwareKvm: need(
    kvmUsable() && !existsSync('/sys/module/kvm_pvm'),
    existsSync('/sys/module/kvm_pvm')
      ? 'KVM here is kvm_pvm (guest CPL 0 is emulated; a full Linux guest cannot run)'
      : '/dev/kvm is missing or not usable',
  ),
  command(cmd: string): Need {
    return need(hasCommand(cmd), `the command \`${cmd}\` is not installed`);
  },
};
