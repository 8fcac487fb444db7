/**
 * A typed model of the OCI runtime-spec `config.json` (the parts nodevisor reads), with the
 * spec's own JSON field names. Unknown fields are kept when a spec is copied.
 */

export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: Root;
  hostname?: string;
  mounts?: Mount[];
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: Linux;
  [extra: string]: unknown;
}

export interface Process {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: User;
  args?: string[];
  env?: string[];
  cwd: string;
  /** The current object form, or the array of the spec before 1.0.0-rc5 (one list for every set). */
  capabilities?: LinuxCapabilities | string[] | null;
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  selinuxLabel?: string;
  [extra: string]: unknown;
}

export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
  username?: string;
}

export interface LinuxCapabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface Root {
  path: string;
  readonly?: boolean;
}

export interface Mount {
  destination: string;
  source?: string;
  type?: string;
  options?: string[];
}

export interface Hook {
  /** Absolute path of the executable; no PATH lookup. */
  path: string;
  /** argv, argv[0] included. */
  args?: string[];
  /** `NAME=value` entries; absent means the hook inherits the runtime's environment. */
  env?: string[];
  /** Seconds before the hook is killed; must be > 0. */
  timeout?: number;
}

/** Each list says where and when its hooks run; see src/hooks/hooks.ts. */
export interface Hooks {
  prestart?: Hook[];
  createRuntime?: Hook[];
  createContainer?: Hook[];
  startContainer?: Hook[];
  poststart?: Hook[];
  poststop?: Hook[];
}

export type NamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup' | 'time';

export interface LinuxNamespace {
  type: NamespaceType | string;
  path?: string;
}

export interface LinuxDevice {
  type: string;
  path: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface LinuxResources {
  devices?: unknown[];
  memory?: Record<string, unknown>;
  cpu?: Record<string, unknown>;
  pids?: Record<string, unknown>;
  blockIO?: Record<string, unknown>;
  hugepageLimits?: unknown[];
  network?: Record<string, unknown>;
  [extra: string]: unknown;
}

export interface Linux {
  namespaces?: LinuxNamespace[];
  devices?: LinuxDevice[];
  resources?: LinuxResources;
  cgroupsPath?: string;
  [extra: string]: unknown;
}

/** A spec that passed validation: the sections nodevisor needs are present. */
export interface ValidSpec extends Spec {
  process: Process;
  root: Root;
  linux: Linux;
}
