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

/** What a sandbox could leave behind. /run/netns is shared with other tests: pass `netns` to list it. */
export function hostState(options: { image: string; stateRoot: string; mappingRoot: string }) {
  return {
    loops: loopDevicesOf(options.image),
    // Mount points of this process, without netns bind mounts (other processes' come and go).
    mounts: readFileSync('/proc/self/mountinfo', 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[4]!)
      .filter((m) => !m.startsWith('/run/netns/'))
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
  const deadline = Date.now() + timeoutMs;
  let value = read();
  while (JSON.stringify(value) !== JSON.stringify(expected) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    value = read();
  }
  return value;
}
