/**
 * The runtime's configuration file: `/etc/nodevisor/configuration.toml`, or the file named by
 * `NODEVISOR_CONF_FILE`. Kata's key names where Kata has the setting (its
 * `[hypervisor.<name>]`, `[factory]` and `[runtime]` tables), nodevisor's own under the same
 * tables otherwise (`isolation`, `agent_path`, `state_root`, `mapping_root`). Parsed with
 * smol-toml; every key is checked, and an unknown key is an error naming it (a typo in a
 * runtime config must not silently fall back to a default).
 *
 * A missing default file means the defaults (isolation 'namespaces' needs no kernel); a
 * missing file named by NODEVISOR_CONF_FILE is an error.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';

import { parse, TomlError } from 'smol-toml';

import type { Param, RuntimeConfig } from '../config/types.js';
import { NodevisorError, errorCode } from '../errors.js';
import { checkFactoryConfig } from '../factory/check-config.js';
import { ISOLATIONS, type Isolation } from '../sandbox/types.js';

export const DEFAULT_CONFIG_FILE = '/etc/nodevisor/configuration.toml';
/** The hypervisor table nodevisor reads: `[hypervisor.nodevisor]` (Kata: `[hypervisor.qemu]` ...). */
export const HYPERVISOR_TABLE = 'nodevisor';

export interface RuntimeFileConfig {
  /** Which file was read ('' when the defaults were used). */
  path: string;
  isolation: Isolation;
  runtimeConfig: RuntimeConfig;
  /** The agent binary for isolation 'namespaces' ('' = the built one). */
  agentPath: string;
  /** The sandboxes' host state (default /run/nodevisor/sandboxes). */
  stateRoot: string;
  /** The container-id mapping root (default /run/nodevisor/mapping). */
  mappingRoot: string;
}

type Table = Record<string, unknown>;

function configError(path: string, message: string, cause?: unknown): NodevisorError {
  return new NodevisorError(`${path || 'configuration'}: ${message}`, { code: 'ECONFIG', path, cause });
}

class Reader {
  constructor(
    private readonly path: string,
    private readonly table: Table,
    private readonly name: string,
  ) {}

  readonly used = new Set<string>();

  private get(key: string): unknown {
    this.used.add(key);
    return this.table[key];
  }

  string(key: string, fallback: string): string {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'string') throw configError(this.path, `${this.name}.${key} must be a string, not ${JSON.stringify(v)}`);
    return v;
  }

  path_(key: string, fallback: string): string {
    const v = this.string(key, fallback);
    if (v !== '' && !isAbsolute(v)) throw configError(this.path, `${this.name}.${key} must be an absolute path, not ${JSON.stringify(v)}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw configError(this.path, `${this.name}.${key} must be true or false, not ${JSON.stringify(v)}`);
    return v;
  }

  uint(key: string, fallback: number | undefined, max: number): number | undefined {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
      throw configError(this.path, `${this.name}.${key} must be an integer from 0 to ${max}, not ${JSON.stringify(v)}`);
    }
    return v;
  }

  /** Fails on a key nothing read. */
  done(): void {
    for (const key of Object.keys(this.table)) {
      if (!this.used.has(key)) throw configError(this.path, `unknown key ${this.name}.${key}`);
    }
  }
}

function subTable(path: string, parent: Table, key: string, name: string): Table {
  const v = parent[key];
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Date) throw configError(path, `[${name}] must be a table`);
  return v as Table;
}

/** Kata's `kernel_params`: a space-separated string of `key=value` or `key`. */
function kernelParams(text: string): Param[] {
  return text
    .split(/\s+/)
    .filter(Boolean)
    .map((word) => {
      const eq = word.indexOf('=');
      return eq < 0 ? { key: word, value: '' } : { key: word.slice(0, eq), value: word.slice(eq + 1) };
    });
}

/** Builds the configuration from parsed TOML (`path` names the file in errors). */
export function configFromToml(doc: Table, path: string): RuntimeFileConfig {
  for (const key of Object.keys(doc)) {
    if (!['hypervisor', 'factory', 'runtime'].includes(key)) throw configError(path, `unknown table or key ${key}`);
  }
  const hypervisors = subTable(path, doc, 'hypervisor', 'hypervisor');
  for (const key of Object.keys(hypervisors)) {
    if (key !== HYPERVISOR_TABLE) throw configError(path, `unknown hypervisor [hypervisor.${key}] (nodevisor reads [hypervisor.${HYPERVISOR_TABLE}])`);
  }
  const h = new Reader(path, subTable(path, hypervisors, HYPERVISOR_TABLE, `hypervisor.${HYPERVISOR_TABLE}`), `hypervisor.${HYPERVISOR_TABLE}`);
  const f = new Reader(path, subTable(path, doc, 'factory', 'factory'), 'factory');
  const r = new Reader(path, subTable(path, doc, 'runtime', 'runtime'), 'runtime');

  const kernelPath = h.path_('kernel', '');
  const initrdPath = h.path_('initrd', '');
  const imagePath = h.path_('image', '');
  const memorySize = h.uint('default_memory', undefined, 1 << 20);
  const numVCPUs = h.uint('default_vcpus', undefined, 256);
  const hotplugSlots = h.uint('hotplug_slots', undefined, 64);
  const hotplugNetSlots = h.uint('hotplug_net_slots', undefined, 64);
  const params = kernelParams(h.string('kernel_params', ''));
  const debug = h.bool('enable_debug', false);
  const disableBlockDeviceUse = h.bool('disable_block_device_use', false);
  const disableGuestSeccomp = h.bool('disable_guest_seccomp', false);
  h.done();

  const factoryConfig = {
    template: f.bool('enable_template', false),
    vmCacheNumber: f.uint('vm_cache_number', 0, 4096)!,
    vmCacheEndpoint: f.path_('vm_cache_endpoint', ''),
  };
  f.done();

  const isolation = r.string('isolation', 'vm') as Isolation;
  if (!ISOLATIONS.includes(isolation)) throw configError(path, `runtime.isolation must be one of ${ISOLATIONS.join(', ')}, not ${JSON.stringify(isolation)}`);
  const trace = r.bool('enable_tracing', false);
  const disableNewNetNs = r.bool('disable_new_netns', false);
  const agentPath = r.path_('agent_path', '');
  const stateRoot = r.path_('state_root', '/run/nodevisor/sandboxes');
  const mappingRoot = r.path_('mapping_root', '/run/nodevisor/mapping');
  r.done();

  const hypervisorConfig = {
    kernelPath,
    kernelParams: params,
    ...(initrdPath ? { initrdPath } : {}),
    ...(imagePath ? { imagePath } : {}),
    ...(memorySize !== undefined ? { memorySize } : {}),
    ...(numVCPUs !== undefined ? { numVCPUs } : {}),
    ...(hotplugSlots !== undefined ? { hotplugSlots } : {}),
    ...(hotplugNetSlots !== undefined ? { hotplugNetSlots } : {}),
    ...(debug ? { debug } : {}),
  };
  if (isolation === 'vm' && kernelPath === '') {
    throw configError(path, `isolation "vm" needs hypervisor.${HYPERVISOR_TABLE}.kernel (see \`nodevisor guest build\`), or set runtime.isolation = "namespaces"`);
  }
  try {
    checkFactoryConfig(factoryConfig, hypervisorConfig);
  } catch (err) {
    throw configError(path, (err as Error).message, err);
  }
  return {
    path,
    isolation,
    agentPath,
    stateRoot,
    mappingRoot,
    runtimeConfig: {
      hypervisorConfig,
      factoryConfig,
      trace,
      disableNewNetNs,
      ...(disableGuestSeccomp ? { disableGuestSeccomp } : {}),
      ...(disableBlockDeviceUse ? { disableBlockDeviceUse } : {}),
    },
  };
}

/** Parses TOML text (errors name the file, line and column). */
export function parseConfigText(text: string, path: string): RuntimeFileConfig {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (err) {
    if (err instanceof TomlError) throw configError(path, `invalid TOML at line ${err.line}, column ${err.column}: ${err.message.split('\n')[0]}`, err);
    throw configError(path, (err as Error).message, err);
  }
  return configFromToml(doc, path);
}

/** The configuration file to read: NODEVISOR_CONF_FILE, else the default. */
export function configFilePath(env: NodeJS.ProcessEnv = process.env): { path: string; explicit: boolean } {
  const named = env.NODEVISOR_CONF_FILE;
  if (named !== undefined && named !== '') return { path: named, explicit: true };
  return { path: DEFAULT_CONFIG_FILE, explicit: false };
}

/** Loads the configuration (see the module comment for a missing file). */
export async function loadConfig(env: NodeJS.ProcessEnv = process.env): Promise<RuntimeFileConfig> {
  const { path, explicit } = configFilePath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT' && !explicit) return configFromToml({ runtime: { isolation: 'namespaces' } }, '');
    throw configError(path, `cannot read it: ${(err as Error).message}`, err);
  }
  return parseConfigText(text, path);
}
