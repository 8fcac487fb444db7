/**
 * Network namespaces as files: create one bound at a path, delete it, check that a path is
 * one and tell which one it is. The work runs on libuv worker threads (see
 * docs/threads-and-trust.md); the JS thread never changes namespace here.
 */
import { isAbsolute } from 'node:path';

import { invalid } from '../errors.js';
import { logger } from '../log/logger.js';
import { addon, type NsIdentity } from '../native/binding.js';
import { validateId } from '../oci/ids.js';

export type { NsIdentity } from '../native/binding.js';

/** Where `ip netns`, CNI and nodevisor keep named network namespaces. */
export const DEFAULT_NETNS_DIR = '/run/netns';

export interface CreateNetNsOptions {
  /** Absolute directory for the mount point; created (one level) if missing. */
  dir?: string;
  /** File name; default `nodevisor-<32 random hex digits>`. Same rules as ids. */
  name?: string;
}

/**
 * Creates a new, empty network namespace (only `lo`, down) and bind-mounts it on
 * `<dir>/<name>`, so it lives until `deleteNetNs`. Needs CAP_SYS_ADMIN. On failure nothing is
 * left behind. Resolves to the path.
 */
export async function createNetNs(options: CreateNetNsOptions = {}): Promise<string> {
  const dir = options.dir ?? DEFAULT_NETNS_DIR;
  if (typeof dir !== 'string' || !isAbsolute(dir)) {
    throw invalid(`createNetNs: dir must be an absolute path, not ${JSON.stringify(dir)}`);
  }
  const name = options.name === undefined ? '' : validateId(options.name, 'network namespace name');
  const path = await addon().createNetNs(dir, name);
  logger('netns').debug({ path }, 'created network namespace');
  return path;
}

/**
 * Deletes a network namespace made by `createNetNs` (or `ip netns add`): lazy unmount, then
 * unlink. Processes still inside keep it alive until they leave. A missing path is not an
 * error (cleanup may run twice): resolves true when something was removed, false when the
 * path did not exist. A path that is not a network namespace is refused (EINVAL), never
 * unlinked.
 */
export async function deleteNetNs(path: string): Promise<boolean> {
  if (typeof path !== 'string' || path === '') throw invalid('deleteNetNs: path must be a non-empty string');
  const removed = await addon().deleteNetNs(path);
  logger('netns').debug({ path, removed }, 'deleted network namespace');
  return removed;
}

/**
 * Checks that `path` is a network namespace (a bind mount such as /run/netns/x, or
 * /proc/<pid>/ns/net) and resolves to its identity. Rejects with code EINVAL and the message
 * "not a network namespace: <path>", or with the errno of the failing call (ENOENT, ...).
 */
export async function netNsIdentity(path: string): Promise<NsIdentity> {
  if (typeof path !== 'string' || path === '') throw invalid('netNsIdentity: path must be a non-empty string');
  return addon().checkNetNs(path);
}

/** Identity of the network namespace the JS thread is in right now (synchronous). */
export function currentNetNsIdentity(): NsIdentity {
  return addon().threadNetNsIdentity();
}

/** Two identities name the same namespace. */
export function sameNetNs(a: NsIdentity, b: NsIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}
