/**
 * OCI spec + runtime config → the sandbox (VM) configuration (Kata H2, H4, H5).
 */
import { statfs } from 'node:fs/promises';

import type { HypervisorConfig, RuntimeConfig } from '../config/types.js';
import { NodevisorError, errorCode } from '../errors.js';
import { containerConfig, type ContainerConfig, type ContainerConfigOptions } from './container-config.js';
import type { Spec, ValidSpec } from './spec.js';

export interface NetworkConfig {
  /** The sandbox's network namespace; '' until one is chosen or created. */
  netNsPath: string;
  /** True when nodevisor created the netns (and so deletes it). */
  netNsCreated: boolean;
  disableNewNetNs: boolean;
}

export interface SandboxConfig {
  id: string;
  hostname: string;
  hypervisorConfig: HypervisorConfig;
  networkConfig: NetworkConfig;
  containers: ContainerConfig[];
  /** Size of the guest's /dev/shm in bytes; 0 when the spec mounts none. */
  shmSize: number;
  systemdCgroup: boolean;
  disableGuestSeccomp: boolean;
  /** Guest assets the spec asks for through annotations (recorded, not applied). */
  assetAnnotations: Record<string, string>;
}

export interface SandboxConfigOptions extends ContainerConfigOptions {
  systemdCgroup?: boolean;
}

/** Default /dev/shm size, as Kata's (64 MiB). */
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

/** Annotation prefix Kata uses for per-pod guest assets. */
const ASSET_ANNOTATION_PREFIX = 'com.github.containers.virtcontainers.';
const ASSET_KEYS = ['KernelPath', 'ImagePath', 'InitrdPath', 'KernelHash', 'ImageHash', 'AssetHashType'];

/** Netns path from the last `network` namespace entry with a non-empty path; '' if none. */
function netNsPathOf(spec: ValidSpec): string {
  let path = '';
  for (const ns of spec.linux.namespaces ?? []) {
    if (ns.type === 'network' && typeof ns.path === 'string' && ns.path !== '') path = ns.path;
  }
  return path;
}

/**
 * /dev/shm size: 0 without a /dev/shm mount; the size of the source filesystem for a bind
 * mount of anything but the host's /dev/shm; else the 64 MiB default.
 */
async function shmSizeOf(spec: ValidSpec): Promise<number> {
  const mount = (spec.mounts ?? []).find((m) => m.destination === '/dev/shm');
  if (!mount) return 0;
  if (mount.type === 'bind' && mount.source && mount.source !== '/dev/shm') {
    try {
      const st = await statfs(mount.source);
      return st.bsize * st.blocks;
    } catch (err) {
      throw new NodevisorError(`cannot measure the /dev/shm source ${mount.source}: ${(err as Error).message}`, {
        code: errorCode(err) ?? 'EIO',
        path: mount.source,
        cause: err,
      });
    }
  }
  return DEFAULT_SHM_SIZE;
}

export async function sandboxConfig(
  spec: Spec,
  runtimeConfig: RuntimeConfig,
  options: SandboxConfigOptions,
): Promise<SandboxConfig> {
  const container = containerConfig(spec, options);
  const valid = container.spec;
  const annotations = valid.annotations ?? {};
  const assetAnnotations: Record<string, string> = {};
  for (const key of ASSET_KEYS) {
    const full = ASSET_ANNOTATION_PREFIX + key;
    if (Object.hasOwn(annotations, full)) assetAnnotations[full] = annotations[full]!;
  }
  return {
    id: container.id,
    hostname: valid.hostname ?? '',
    hypervisorConfig: structuredClone(runtimeConfig.hypervisorConfig),
    networkConfig: {
      netNsPath: netNsPathOf(valid),
      netNsCreated: false,
      disableNewNetNs: runtimeConfig.disableNewNetNs ?? false,
    },
    containers: [container],
    shmSize: await shmSizeOf(valid),
    systemdCgroup: options.systemdCgroup ?? false,
    disableGuestSeccomp: runtimeConfig.disableGuestSeccomp ?? false,
    assetAnnotations,
  };
}
