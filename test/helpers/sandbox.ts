/**
 * Shared by the sandbox tests: a busybox container spec, a runtime config, and a listing of
 * what a sandbox may leave on the host (netns, loop devices, mounts, threads, child processes,
 * state and mapping directories) to compare before and after.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';

import type { RuntimeConfig } from '../../src/config/types.js';
import type { Hook, Spec } from '../../src/oci/spec.js';

export function busyboxSpec(args: string[], extra: Partial<Spec> = {}): Spec {
  return {
    ociVersion: '1.0.2',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args, env: ['PATH=/bin'], cwd: '/' },
    root: { path: 'rootfs' },
    hostname: 'box',
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: { namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }] },
    ...extra,
  };
}

export function runtimeConfig(kernelPath = ''): RuntimeConfig {
  return {
    hypervisorConfig: { kernelPath, kernelParams: [] },
    factoryConfig: { template: false, vmCacheNumber: 0, vmCacheEndpoint: '' },
    trace: false,
    disableNewNetNs: false,
  };
}

/** A prestart hook writing the inode of the network namespace it runs in to `file`. */
export function netnsInodeHook(file: string, exitCode = 0): Hook {
  return { path: '/bin/sh', args: ['sh', '-c', `stat -L -c %i /proc/self/ns/net > ${file}; exit ${exitCode}`] };
}

/** The inode a netnsInodeHook recorded. */
export function recordedInode(file: string): number {
  return Number(readFileSync(file, 'utf8').trim());
}

/** /run/netns entries that are the network namespace with inode `ino`. */
export function netnsMountsOf(ino: number): string[] {
  if (!existsSync('/run/netns')) return [];
  return readdirSync('/run/netns').filter((name) => {
    try {
      return statSync(`/run/netns/${name}`).ino === ino;
    } catch {
      return false;
    }
  });
}

/** Loop devices backed by `file`. */
export function loopDevicesOf(file: string): string[] {
  return execFileSync('losetup', ['--associated', file, '--noheadings', '--output', 'NAME'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .sort();
}

function list(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** Child processes of this process (the agent's unshare would be one). */
export function childPids(): string[] {
  return readdirSync('/proc/self/task')
    .map((t) => {
      try {
        return readFileSync(`/proc/self/task/${t}/children`, 'utf8').trim();
      } catch {
        return '';
      }
    })
    .join(' ')
    .split(/\s+/)
    .filter(Boolean)
    .sort();
}

/** Where a sandbox could leave a mount on the host: nodevisor's run directory and the test's. */
const SANDBOX_MOUNT_ROOTS = ['/run/nodevisor'];

/**
 * What a sandbox could leave behind. The machine is shared with other tests, so mounts are those
 * under `workDir` or /run/nodevisor (netns bind mounts are checked by inode: netnsMountsOf).
 */
export function hostState(options: { image: string; stateRoot: string; mappingRoot: string; workDir?: string }) {
  const roots = [...SANDBOX_MOUNT_ROOTS, ...(options.workDir ? [options.workDir] : [])];
  return {
    loops: loopDevicesOf(options.image),
    mounts: readFileSync('/proc/self/mountinfo', 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[4]!)
      .filter((m) => roots.some((r) => m === r || m.startsWith(`${r}/`)))
      .sort(),
    threads: readdirSync('/proc/self/task').length,
    children: childPids(),
    state: list(options.stateRoot),
    mapping: list(options.mappingRoot),
  };
}

/**
 * Polls `read` until it returns a value equal (JSON) to `expected`, or `timeoutMs` passed;
 * resolves to the last value read. For what the kernel frees after a process exits (an
 * autoclear loop device once the sandbox's mount namespace is gone).
 */
export async function settled<T>(read: () => T, expected: T, timeoutMs = 5000): Promise<T> {
  return settledWhen(read, (value) => JSON.stringify(value) === JSON.stringify(expected), timeoutMs);
}

/** Polls `read` until `done(value)` or `timeoutMs` passed; resolves to the last value read. */
export async function settledWhen<T>(read: () => T, done: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = read();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    value = read();
  }
  return value;
}

type HostState = ReturnType<typeof hostState>;

/**
 * Waits (bounded) until the host is back to `before`: the same loop devices, mounts, children,
 * state and mapping entries, and no more threads than before (other parts of the process, such
 * as the VM reaper, may end threads meanwhile; none may be added). Resolves to the last state,
 * with `threads` replaced by `before.threads` when it is not above it, for one toEqual.
 */
export async function backToBefore(read: () => HostState, before: HostState): Promise<HostState> {
  const same = (s: HostState) => JSON.stringify({ ...s, threads: 0 }) === JSON.stringify({ ...before, threads: 0 }) && s.threads <= before.threads;
  const after = await settledWhen(read, same);
  return after.threads <= before.threads ? { ...after, threads: before.threads } : after;
}
