/**
 * OCI spec → the container configuration nodevisor runs (Kata H1, H7), with the upstream
 * quirks fixed: a spec without process/root/linux is an error, not a crash; `A=b=c` keeps
 * the value `b=c`; the input spec is never changed.
 */
import { isAbsolute, join, normalize } from 'node:path';

import { invalid } from '../errors.js';
import type { RootFs } from '../rootfs/rootfs.js';
import { containerType, type ContainerType } from './annotations.js';
import { normalizeCapabilities } from './capabilities.js';
import { validateId } from './ids.js';
import type { LinuxCapabilities, LinuxResources, Mount, Spec, ValidSpec } from './spec.js';
import { validateSpec } from './validate.js';

export interface EnvVar {
  name: string;
  value: string;
}

/** The container's process, as the agent will start it. */
export interface Cmd {
  args: string[];
  envs: EnvVar[];
  workDir: string;
  /** Decimal uid and gids, as Kata passes them to its agent. */
  user: string;
  primaryGroup: string;
  supplementaryGroups: string[];
  interactive: boolean;
  console: string;
  detach: boolean;
  noNewPrivileges: boolean;
  capabilities: Required<LinuxCapabilities>;
}

export type DeviceType = 'c' | 'b' | 'u' | 'p';

export interface DeviceInfo {
  containerPath: string;
  devType: DeviceType;
  major: number;
  minor: number;
  uid: number;
  gid: number;
  fileMode: number;
}

export interface ContainerConfig {
  id: string;
  rootFs: RootFs;
  readonlyRootfs: boolean;
  cmd: Cmd;
  mounts: Mount[];
  deviceInfos: DeviceInfo[];
  resources: LinuxResources;
  containerType: ContainerType;
  bundlePath: string;
  /** A copy of the spec this config came from. */
  spec: ValidSpec;
}

export interface ContainerConfigOptions {
  bundlePath: string;
  containerId: string;
  /** Path of the console (pty) the caller set up, or '' for none. */
  console?: string;
  detach?: boolean;
}

/** Splits `NAME=value` at the first `=`, so `A=b=c` is A → `b=c`. */
export function parseEnv(entries: readonly string[] | undefined): EnvVar[] {
  return (entries ?? []).map((entry, i) => {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw invalid(`process.env[${i}] ${JSON.stringify(entry)} is not of the form NAME=value`);
    return { name: entry.slice(0, eq), value: entry.slice(eq + 1) };
  });
}

/** The rootfs a spec names: `root.path`, relative to the bundle unless absolute, host-mounted. */
function specRootFs(spec: ValidSpec, bundlePath: string): RootFs {
  const path = spec.root.path;
  return { target: normalize(isAbsolute(path) ? path : join(bundlePath, path)), mounted: true };
}

const DEVICE_TYPES: readonly string[] = ['c', 'b', 'u', 'p'];

function deviceInfos(spec: ValidSpec): DeviceInfo[] {
  return (spec.linux.devices ?? []).map((d, i) => {
    if (!DEVICE_TYPES.includes(d.type)) {
      throw invalid(`Unexpected Device Type ${d.type} for device ${d.path} (linux.devices[${i}])`);
    }
    if (typeof d.path !== 'string' || d.path === '') {
      throw invalid(`Path cannot be empty for device (linux.devices[${i}])`);
    }
    if (!isAbsolute(d.path)) throw invalid(`linux.devices[${i}].path ${JSON.stringify(d.path)} must be absolute`);
    const needsNumbers = d.type !== 'p';
    for (const field of ['major', 'minor'] as const) {
      const v = d[field];
      if (v === undefined ? needsNumbers : !Number.isInteger(v) || v < 0) {
        throw invalid(`linux.devices[${i}] (${d.path}) needs a non-negative integer ${field}`);
      }
    }
    return {
      containerPath: d.path,
      devType: d.type as DeviceType,
      major: d.major ?? 0,
      minor: d.minor ?? 0,
      uid: d.uid ?? 0,
      gid: d.gid ?? 0,
      fileMode: d.fileMode ?? 0,
    };
  });
}

/** Converts and checks one container's part of a spec. */
export function containerConfig(spec: Spec, options: ContainerConfigOptions): ContainerConfig {
  const id = validateId(options.containerId, 'container ID');
  if (typeof options.bundlePath !== 'string' || options.bundlePath === '') {
    throw invalid('bundle path must be specified');
  }
  const valid = validateSpec(structuredClone(spec));
  const proc = valid.process;
  const cmd: Cmd = {
    args: [...(proc.args ?? [])],
    envs: parseEnv(proc.env),
    workDir: proc.cwd,
    user: String(proc.user.uid),
    primaryGroup: String(proc.user.gid),
    supplementaryGroups: (proc.user.additionalGids ?? []).map(String),
    interactive: proc.terminal ?? false,
    console: options.console ?? '',
    detach: options.detach ?? false,
    noNewPrivileges: proc.noNewPrivileges ?? false,
    capabilities: normalizeCapabilities(proc.capabilities),
  };
  return {
    id,
    rootFs: specRootFs(valid, options.bundlePath),
    readonlyRootfs: valid.root.readonly ?? false,
    cmd,
    mounts: (valid.mounts ?? []).map((m) => ({ ...m, options: [...(m.options ?? [])] })),
    deviceInfos: deviceInfos(valid),
    resources: valid.linux.resources ?? {},
    containerType: containerType(valid),
    bundlePath: options.bundlePath,
    spec: valid,
  };
}
