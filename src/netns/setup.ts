/**
 * `setupNetworkNamespace(networkConfig)` (Kata B15, B16), with nodevisor's fixes:
 * - the input is never mutated; a new config is returned when something changes;
 * - a caller-supplied path must be a network namespace (Kata let a missing path through, to
 *   fail later); the error says "not a network namespace: <path>" or carries the errno;
 * - the host's own namespace is recognised by identity (device and inode), not by parsing
 *   /proc/self/mountinfo, so any path to it is caught (/proc/1/ns/net, a bind mount of it).
 */
import { NodevisorError, errorCode, invalid } from '../errors.js';
import { logger } from '../log/logger.js';
import type { NetworkConfig } from '../oci/sandbox-config.js';
import { createNetNs, currentNetNsIdentity, netNsIdentity, sameNetNs } from './netns.js';

export type { NetworkConfig } from '../oci/sandbox-config.js';

/**
 * - `disableNewNetNs`: returns the config unchanged (the VM runs in the host netns).
 * - `netNsPath` empty: creates a namespace and returns a new config with its path and
 *   `netNsCreated: true` (the caller deletes it with `deleteNetNs` on teardown or rollback).
 * - otherwise: checks the path is a network namespace other than the one this (JS) thread is
 *   in, and returns the config unchanged; `netNsCreated` stays as given (a caller's
 *   namespace is never deleted by nodevisor).
 */
export async function setupNetworkNamespace(networkConfig: NetworkConfig): Promise<NetworkConfig> {
  if (typeof networkConfig !== 'object' || networkConfig === null) {
    throw invalid('setupNetworkNamespace(networkConfig): networkConfig must be an object');
  }
  const log = logger('netns');
  if (networkConfig.disableNewNetNs) {
    log.warn('DisableNewNetNs is on, the VM runs in the host network namespace');
    return networkConfig;
  }
  if (!networkConfig.netNsPath) {
    const netNsPath = await createNetNs();
    log.info({ path: netNsPath }, 'created the sandbox network namespace');
    return { ...networkConfig, netNsPath, netNsCreated: true };
  }
  if (await hostNetworkingRequested(networkConfig.netNsPath)) {
    throw new NodevisorError(
      `host networking requested, not supported by nodevisor: ${networkConfig.netNsPath} is the host's network namespace`,
      { code: 'EINVAL', path: networkConfig.netNsPath },
    );
  }
  return networkConfig;
}

/**
 * True when `path` is the network namespace this thread is in. Rejects when `path` is not a
 * network namespace at all.
 */
export async function hostNetworkingRequested(path: string): Promise<boolean> {
  let requested;
  try {
    requested = await netNsIdentity(path);
  } catch (err) {
    const native = err as { errno?: number; syscall?: string };
    throw new NodevisorError(`cannot use network namespace ${path}: ${(err as Error).message}`, {
      code: errorCode(err) ?? 'EFAIL',
      errno: native.errno,
      syscall: native.syscall,
      path,
      cause: err,
    });
  }
  // Read after the await: the JS thread is where it will be when the sandbox starts.
  return sameNetNs(requested, currentNetNsIdentity());
}
