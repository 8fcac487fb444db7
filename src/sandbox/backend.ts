/**
 * What an isolation backend provides to the one orchestration path of createSandbox /
 * createContainer: start an agent, give it a disk, stop it. Everything else (the OCI config,
 * the netns, hooks, storage.mount, container.create, the mapping, rollback) is shared.
 *
 * JS thread only; every call that waits returns a Promise.
 */
import type { AgentClient } from '../agent/client.js';
import type { HypervisorConfig } from '../config/types.js';
import type { Mount, ValidSpec } from '../oci/spec.js';
import type { Isolation } from './types.js';

/** A disk the agent can mount, and how to take it away again. */
export interface AgentDisk {
  /** How `storage.mount` names it: a virtio-blk serial (VM) or a device path (namespaces). */
  locator: { serial: string } | { device: string };
  /**
   * Called once the agent has mounted the disk: a backend can hand what it set up to the kernel
   * here (namespaces: the loop device is released when its last mount goes).
   */
  mounted?(): Promise<void>;
  /** Detaches the disk (and releases what the backend set up for it). Idempotent. */
  release(): Promise<void>;
}

export interface BackendStartOptions {
  sandboxId: string;
  /** The sandbox's network namespace ('' when the host's is used). */
  netNsPath: string;
  hypervisorConfig: HypervisorConfig;
  /** The sandbox container's spec (namespaces: whether a user namespace is asked for). */
  spec: ValidSpec;
  /** Host directory for this sandbox's state; the backend may create it, the sandbox removes it. */
  stateDir: string;
  agentPath?: string;
}

export interface SandboxBackend {
  readonly isolation: Isolation;
  /** The agent's client; the backend closes it when it stops. */
  readonly agent: AgentClient;
  /** Where the agent mounts a container's rootfs (a path in the agent's view). */
  rootfsMountPoint(containerId: string): string;
  /** Makes `path` (a block device or an image file) visible to the agent for `containerId`. */
  attachDisk(containerId: string, path: string, readOnly: boolean): Promise<AgentDisk>;
  /**
   * The path the agent can use for a host-mounted rootfs, or an ENOTSUP error when the agent
   * cannot see the host's files (a VM without a shared filesystem).
   */
  hostRootfs(target: string): string;
  /**
   * Puts the spec's mounts that the agent protocol cannot carry under the container's rootfs
   * (in the agent's view) before container.create; resolves to an undo. Absent: mounts are
   * not supported by this backend and are skipped with a warning.
   */
  addMounts?(containerId: string, rootfs: string, mounts: readonly Mount[]): Promise<() => Promise<void>>;
  /**
   * Gives the sandbox the network of `netNsPath` (isolation 'vm': taps, tc redirects, the
   * guest configured); resolves to its undo, which `stop` also runs. Absent: the agent already
   * runs in the netns ('namespaces').
   */
  connectNetwork?(netNsPath: string): Promise<() => Promise<void>>;
  /** Stops the agent (and the VM); every container in it dies. Idempotent. */
  stop(): Promise<void>;
}

export type BackendStarter = (options: BackendStartOptions) => Promise<SandboxBackend>;
