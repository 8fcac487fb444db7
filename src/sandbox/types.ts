/**
 * The shapes of the sandbox API (DESIGN §2): the options of `createSandbox` and
 * `createContainer`, the process they return, and the isolation backends to choose from.
 */
import type { RuntimeConfig } from '../config/types.js';
import type { ContainerIdMapping } from '../mapping/container-id-mapping.js';
import type { Spec } from '../oci/spec.js';
import type { RootFs } from '../rootfs/rootfs.js';
import type { Sandbox } from './sandbox.js';

export type { RootFs } from '../rootfs/rootfs.js';

/**
 * How a sandbox is isolated from the host:
 * - `'vm'`: a KVM VM (this process's VMM) with the agent as the guest's init;
 * - `'namespaces'`: the same agent on the host, in new PID, mount, UTS and IPC namespaces (and a
 *   user namespace when the spec asks), joined to the sandbox's network namespace. It isolates
 *   like runc, not like a VM: the containers share the host's kernel.
 */
export type Isolation = 'vm' | 'namespaces';

export const ISOLATIONS: readonly Isolation[] = ['vm', 'namespaces'];

/** Where nodevisor keeps per-sandbox state on the host (namespaces mode: the agent's mount points). */
export const DEFAULT_SANDBOX_STATE_ROOT = '/run/nodevisor/sandboxes';

/** Options both creations share. */
interface CommonCreateOptions {
  spec: Spec;
  /** The container's rootfs: `{ mounted: true }` for the spec's `root.path`, or a block device / image. */
  rootFs: RootFs;
  containerId: string;
  bundlePath: string;
  /** Path of a console (pty) the caller set up; '' or absent for none. */
  console?: string;
  /** Kata's `detach`: the caller does not read the output. */
  disableOutput?: boolean;
  /** Shim v2 style: state in memory only (no container-id mapping on disk). */
  builtIn?: boolean;
}

export interface CreateSandboxOptions extends CommonCreateOptions {
  runtimeConfig: RuntimeConfig;
  systemdCgroup?: boolean;
  /** Default `'vm'`. */
  isolation?: Isolation;
  /** Where container-id mappings are written (default: DEFAULT_MAPPING_ROOT). */
  mapping?: ContainerIdMapping;
  /** Host directory for per-sandbox state (default DEFAULT_SANDBOX_STATE_ROOT). */
  stateRoot?: string;
  /** The agent binary for `'namespaces'` (default: the built one, see agentBinaryPath). */
  agentPath?: string;
}

export interface CreateContainerOptions extends CommonCreateOptions {
  /**
   * The sandbox to join. Without it, the sandbox named by the spec's sandbox-id annotation is
   * looked up among the sandboxes this process created.
   */
  sandbox?: Sandbox;
}

/** A container's first process, as Kata's `vc.Process`. */
export interface SandboxProcess {
  containerId: string;
  /** Its pid as the agent sees it (in the guest, or in the sandbox's PID namespace). */
  pid: number;
  startTime: Date;
}
