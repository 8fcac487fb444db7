/**
 * The request, response and event shapes of docs/protocol.md, as TypeScript types. Field names
 * are the protocol's own.
 */

import type { LinuxCapabilities } from '../oci/spec.js';

/** The process of `container.create` and `exec`. */
export interface AgentProcess {
  args: string[];
  env?: string[];
  /** Absolute, inside the container; default `/`. */
  cwd?: string;
  uid?: number;
  gid?: number;
  additionalGids?: number[];
  /**
   * The OCI process's five capability sets (`CAP_...` names; an absent set is empty). Absent:
   * runc's defaults, `CAP_AUDIT_WRITE`, `CAP_KILL`, `CAP_NET_BIND_SERVICE` in bounding,
   * effective and permitted.
   */
  capabilities?: LinuxCapabilities;
  /** Absent: true. */
  noNewPrivileges?: boolean;
  rlimits?: AgentRlimit[];
  /** The OCI `linux.seccomp` profile, compiled to BPF by the agent; absent: no filter. */
  seccomp?: AgentSeccomp;
}

/** One OCI `process.rlimits` entry; a negative limit means unlimited (RLIM_INFINITY). */
export interface AgentRlimit {
  /** `RLIMIT_NOFILE`, `RLIMIT_NPROC`, ... */
  type: string;
  soft: number;
  hard: number;
}

/** OCI `linux.seccomp` (the fields the agent compiles). */
export interface AgentSeccomp {
  /** `SCMP_ACT_ALLOW`, `SCMP_ACT_ERRNO`, `SCMP_ACT_KILL`, `SCMP_ACT_KILL_PROCESS`, `SCMP_ACT_TRAP`, `SCMP_ACT_TRACE`, `SCMP_ACT_LOG`. */
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  syscalls?: AgentSeccompRule[];
}

export interface AgentSeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo?: number; op: string }[];
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
