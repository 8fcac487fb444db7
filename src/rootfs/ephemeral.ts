/**
 * Ephemeral storage: a Kubernetes emptyDir volume with `medium: Memory` is a tmpfs on the
 * host; Kata gives such a mount the type "ephemeral" so the guest makes its own tmpfs
 * instead of sharing the host's (Kata B7, B12).
 */
import type { Mount, Spec } from '../oci/spec.js';
import { mountAt, readMountInfo, type MountInfo } from '../util/mountinfo.js';

const EMPTY_DIR_PLUGIN = 'kubernetes.io~empty-dir';

/** The mount type given to ephemeral storage. */
export const EPHEMERAL_TYPE = 'ephemeral';

function stripTrailingSlashes(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, '') || '/' : path;
}

/** True when the second-to-last element of `path` is `kubernetes.io~empty-dir`. */
function looksLikeEmptyDir(path: string): boolean {
  const parts = stripTrailingSlashes(path).split('/');
  return parts.length >= 2 && parts[parts.length - 2] === EMPTY_DIR_PLUGIN;
}

/**
 * True when `path` is an emptyDir volume (`.../kubernetes.io~empty-dir/<volume>`) and a tmpfs
 * is mounted exactly there. A trailing slash is ignored. `mounts` defaults to this process's
 * /proc/self/mountinfo (procfs, read synchronously: it does not wait on a disk).
 */
export function isEphemeralStorage(path: string, mounts?: readonly MountInfo[]): boolean {
  if (typeof path !== 'string' || !looksLikeEmptyDir(path)) return false;
  let table: readonly MountInfo[];
  try {
    table = mounts ?? readMountInfo();
  } catch {
    return false;
  }
  return mountAt(table, stripTrailingSlashes(path))?.fsType === 'tmpfs';
}

/**
 * Returns a copy of `spec` in which every mount whose source is ephemeral storage has the
 * type "ephemeral". The input spec and its mounts are not changed.
 */
export function setEphemeralStorageType<S extends Spec>(spec: S): S {
  const mounts = spec.mounts ?? [];
  let table: readonly MountInfo[] | undefined;
  const next: Mount[] = mounts.map((m) => {
    if (typeof m.source !== 'string' || !looksLikeEmptyDir(m.source)) return { ...m };
    table ??= safeReadMountInfo();
    return isEphemeralStorage(m.source, table) ? { ...m, type: EPHEMERAL_TYPE } : { ...m };
  });
  return spec.mounts === undefined ? { ...spec } : { ...spec, mounts: next };
}

function safeReadMountInfo(): MountInfo[] {
  try {
    return readMountInfo();
  } catch {
    return [];
  }
}
