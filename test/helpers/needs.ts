/**
 * What a test needs from this machine, detected once, with the reason (and the Debian package
 * to install) when it is missing.
 *
 * A test that cannot run here is a vitest skip that names its reason, never an early `return`
 * in a passing test:
 *
 *   describe('veth pairs', skipUnless('veth tests', needs.root, needs.command('ip')), () => { ... });
 *   it('reads the DSDT', skipUnless('DSDT disassembly', needs.command('iasl')), () => { ... });
 *   it('...', (ctx) => { if (!x) ctx.skip(`why`); ... });            // decided while running
 *
 * skipUnless puts the reason into the test's meta (`skipReason`); test/helpers/skip-reporter.ts
 * prints every skip with its reason and, with CI=true, fails the run on a reason that is not in
 * test/skip-allowlist.txt.
 */
import { accessSync, constants, existsSync, statfsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

import type { TestOptions } from 'vitest';

declare module 'vitest' {
  interface TaskMeta {
    /** Why this test (or the suite it is in) is skipped on this machine. */
    skipReason?: string;
  }
}

export interface Need {
  ok: boolean;
  reason: string;
  /** Prints why the tests that need this are skipped, when they are. Returns `ok`. */
  report(what: string): boolean;
}

export function need(ok: boolean, reason: string): Need {
  return {
    ok,
    reason,
    report(what: string) {
      if (!ok) console.warn(`[skip] ${what}: ${reason}`);
      return ok;
    },
  };
}

/** Every need met (or the first one missing). */
export function allOf(...list: Need[]): Need {
  return list.find((n) => !n.ok) ?? need(true, '');
}

/**
 * Options for `describe`/`it`: run when every need is met; otherwise skip, printing
 * `[skip] what: reason` and keeping the reason in the task's meta for the skip reporter.
 */
export function skipUnless(what: string, ...list: Need[]): TestOptions {
  const missing = list.find((n) => !n.ok);
  if (!missing) return {};
  missing.report(what);
  return { skip: true, meta: { skipReason: missing.reason } };
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
    execFileSync('sh', ['-c', `command -v '${cmd}'`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The Debian package that has each command the tests use (also listed in .ci/run). */
const DEBIAN_PACKAGE: Record<string, string> = {
  ip: 'iproute2',
  tc: 'iproute2',
  ping: 'iputils-ping',
  losetup: 'util-linux',
  taskset: 'util-linux',
  unshare: 'util-linux',
  nsenter: 'util-linux',
  script: 'bsdutils',
  tar: 'tar',
  python3: 'python3',
  containerd: 'containerd',
  ctr: 'containerd',
  'mkfs.ext4': 'e2fsprogs',
  dmsetup: 'dmsetup',
  'qemu-system-x86_64': 'qemu-system-x86',
  'clang++': 'clang libclang-rt-14-dev',
  iasl: 'acpica-tools',
  busybox: 'busybox-static',
  cpio: 'cpio',
  xz: 'xz-utils',
  zstd: 'zstd',
  lz4: 'lz4',
  cmake: 'cmake',
  gcc: 'gcc',
  'g++': 'g++',
  'apt-get': 'apt',
  'dpkg-deb': 'dpkg',
};

const TMPFS_MAGIC = 0x01021994;

function isTmpfs(path: string): boolean {
  try {
    return statfsSync(path).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

const commandNeeds = new Map<string, Need>();

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
  /** A tmpfs at /dev/shm (restores prepared there are taken without a file check: vmm/restore_spares.h). */
  shmTmpfs: need(isTmpfs('/dev/shm'), '/dev/shm is not a tmpfs'),
  /** At least `n` CPUs this process may run on (its affinity, not the machine's count). */
  cpus(n: number): Need {
    const have = availableParallelism();
    return need(have >= n, `needs ${n} CPUs to run on; this process has ${have}`);
  },
  /** A command on PATH; the reason names the Debian package that has it. */
  command(cmd: string): Need {
    let n = commandNeeds.get(cmd);
    if (!n) {
      const pkg = DEBIAN_PACKAGE[cmd];
      n = need(hasCommand(cmd), `the command \`${cmd}\` is not installed${pkg ? ` (apt-get install ${pkg})` : ''}`);
      commandNeeds.set(cmd, n);
    }
    return n;
  },
};
