/**
 * The request, response and event shapes of docs/protocol.md, as TypeScript types. Field names
 * are the protocol's own.
 */

/** The process of `container.create` and `exec`. */
export interface AgentProcess {
  args: string[];
  env?: string[];
  /** Absolute, inside the container; default `/`. */
  cwd?: string;
  uid?: number;
  gid?: number;
  additionalGids?: number[];
}

export interface StorageMount {
  /** The virtio-blk serial of a hot-plugged disk (nodevisor sets it to the container id). */
  serial?: string;
  /** Or an absolute block device path in the guest. */
  device?: string;
  fstype: string;
  /** Kata's split: flag names (`ro`, `nodev`, ...) become mount flags, the rest the data string. */
  options?: string[];
  mountPoint: string;
  /** How long to wait for a disk with `serial` to appear (default 5000, at most 60000). */
  timeoutMs?: number;
}

export interface ContainerCreate {
  containerId: string;
  /** Absolute path of the root filesystem in the guest (e.g. a storage mount point). */
  rootfs: string;
  hostname?: string;
  process: AgentProcess;
}

export interface PingResult {
  agent: string;
  version: number;
  pid: number;
}

export interface ExitStatus {
  /** The exit code when the process exited, else null. */
  exitCode: number | null;
  /** The signal number when a signal killed it, else null. */
  signal: number | null;
}

/** Names the process a request or event is about: the first one when `execId` is absent. */
export interface ProcessRef {
  containerId: string;
  execId?: string;
}

/** `stdio` event, with `data` decoded. */
export interface StdioEvent extends ProcessRef {
  stream: 'stdout' | 'stderr';
  data?: Buffer;
  eof?: boolean;
}

/** `exit` event. */
export type ExitEvent = ProcessRef & ExitStatus;
