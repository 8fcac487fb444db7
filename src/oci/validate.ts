/**
 * Shape checks for an OCI spec that arrives as JSON or from a caller. Each error names the
 * field (`process.user.uid must be ...`), so a bad config.json is fixed in one look.
 */
import { invalid } from '../errors.js';
import type { Hook, ValidSpec } from './spec.js';

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

function fail(where: string, expected: string, got: unknown): never {
  throw invalid(`${where} must be ${expected}, got ${describe(got)}`);
}

function object(v: unknown, where: string): Obj {
  if (!isObject(v)) fail(where, 'an object', v);
  return v;
}

function optString(v: unknown, where: string): void {
  if (v !== undefined && typeof v !== 'string') fail(where, 'a string', v);
}

function optBoolean(v: unknown, where: string): void {
  if (v !== undefined && typeof v !== 'boolean') fail(where, 'a boolean', v);
}

function stringArray(v: unknown, where: string): string[] {
  if (!Array.isArray(v)) fail(where, 'an array of strings', v);
  v.forEach((item, i) => {
    if (typeof item !== 'string') fail(`${where}[${i}]`, 'a string', item);
  });
  return v as string[];
}

function optStringArray(v: unknown, where: string): void {
  if (v !== undefined && v !== null) stringArray(v, where);
}

function uint32(v: unknown, where: string): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    fail(where, 'an integer from 0 to 4294967295', v);
  }
}

function absolutePath(v: unknown, where: string): void {
  if (typeof v !== 'string' || v === '') fail(where, 'a non-empty path', v);
  if (!v.startsWith('/')) throw invalid(`${where} must be an absolute path, got ${JSON.stringify(v)}`);
}

/** Checks `NAME=value` entries: the name is everything before the first `=`, never empty. */
function validateEnvList(v: unknown, where: string): void {
  if (v === undefined) return;
  stringArray(v, where).forEach((entry, i) => {
    const eq = entry.indexOf('=');
    if (eq < 0) throw invalid(`${where}[${i}] ${JSON.stringify(entry)} is not of the form NAME=value`);
    if (eq === 0) throw invalid(`${where}[${i}] ${JSON.stringify(entry)} has an empty variable name`);
  });
}

/** Checks one OCI hook: absolute path, argv and env as string lists, timeout > 0 seconds. */
export function validateHook(v: unknown, where: string): Hook {
  const hook = object(v, where);
  absolutePath(hook.path, `${where}.path`);
  optStringArray(hook.args, `${where}.args`);
  validateEnvList(hook.env ?? undefined, `${where}.env`);
  if (hook.timeout !== undefined && hook.timeout !== null) {
    if (typeof hook.timeout !== 'number' || !Number.isInteger(hook.timeout) || hook.timeout <= 0) {
      fail(`${where}.timeout`, 'a whole number of seconds greater than 0', hook.timeout);
    }
  }
  return hook as unknown as Hook;
}

const HOOK_KINDS = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];

function validateCapabilities(v: unknown, where: string): void {
  if (v === undefined || v === null) return;
  if (Array.isArray(v)) {
    stringArray(v, where);
    return;
  }
  if (!isObject(v)) fail(where, 'an object of capability lists, or an array', v);
  for (const [key, list] of Object.entries(v)) {
    if (list !== null) stringArray(list, `${where}.${key}`);
  }
}

/**
 * Checks that `value` is an OCI spec with the sections a container needs (`process`, `root`,
 * `linux`) and well-typed fields. Returns it typed; throws an EINVAL NodevisorError naming
 * the first wrong field, with `where` (e.g. the config.json path) as the prefix.
 */
export function validateSpec(value: unknown, where = 'spec'): ValidSpec {
  const spec = object(value, where);
  if (typeof spec.ociVersion !== 'string') fail(`${where}.ociVersion`, 'a string', spec.ociVersion);
  for (const section of ['process', 'root', 'linux'] as const) {
    if (spec[section] === undefined || spec[section] === null) {
      throw invalid(`${where} has no "${section}" section, which a container needs`);
    }
  }

  const proc = object(spec.process, `${where}.process`);
  optBoolean(proc.terminal, `${where}.process.terminal`);
  const user = object(proc.user, `${where}.process.user`);
  uint32(user.uid, `${where}.process.user.uid`);
  uint32(user.gid, `${where}.process.user.gid`);
  if (user.additionalGids !== undefined) {
    if (!Array.isArray(user.additionalGids)) fail(`${where}.process.user.additionalGids`, 'an array', user.additionalGids);
    user.additionalGids.forEach((g, i) => uint32(g, `${where}.process.user.additionalGids[${i}]`));
  }
  const args = stringArray(proc.args, `${where}.process.args`);
  if (args.length === 0) throw invalid(`${where}.process.args must have at least one entry (the program)`);
  validateEnvList(proc.env, `${where}.process.env`);
  absolutePath(proc.cwd, `${where}.process.cwd`);
  validateCapabilities(proc.capabilities, `${where}.process.capabilities`);
  optBoolean(proc.noNewPrivileges, `${where}.process.noNewPrivileges`);

  const root = object(spec.root, `${where}.root`);
  if (typeof root.path !== 'string' || root.path === '') fail(`${where}.root.path`, 'a non-empty path', root.path);
  optBoolean(root.readonly, `${where}.root.readonly`);

  optString(spec.hostname, `${where}.hostname`);

  if (spec.mounts !== undefined) {
    if (!Array.isArray(spec.mounts)) fail(`${where}.mounts`, 'an array', spec.mounts);
    spec.mounts.forEach((m, i) => {
      const mount = object(m, `${where}.mounts[${i}]`);
      absolutePath(mount.destination, `${where}.mounts[${i}].destination`);
      optString(mount.source, `${where}.mounts[${i}].source`);
      optString(mount.type, `${where}.mounts[${i}].type`);
      optStringArray(mount.options, `${where}.mounts[${i}].options`);
    });
  }

  if (spec.hooks !== undefined && spec.hooks !== null) {
    const hooks = object(spec.hooks, `${where}.hooks`);
    for (const kind of HOOK_KINDS) {
      const list = hooks[kind];
      if (list === undefined || list === null) continue;
      if (!Array.isArray(list)) fail(`${where}.hooks.${kind}`, 'an array', list);
      list.forEach((h, i) => validateHook(h, `${where}.hooks.${kind}[${i}]`));
    }
  }

  if (spec.annotations !== undefined && spec.annotations !== null) {
    const ann = object(spec.annotations, `${where}.annotations`);
    for (const [k, v] of Object.entries(ann)) {
      if (typeof v !== 'string') fail(`${where}.annotations[${JSON.stringify(k)}]`, 'a string', v);
    }
  }

  const linux = object(spec.linux, `${where}.linux`);
  if (linux.namespaces !== undefined) {
    if (!Array.isArray(linux.namespaces)) fail(`${where}.linux.namespaces`, 'an array', linux.namespaces);
    linux.namespaces.forEach((n, i) => {
      const ns = object(n, `${where}.linux.namespaces[${i}]`);
      if (typeof ns.type !== 'string') fail(`${where}.linux.namespaces[${i}].type`, 'a string', ns.type);
      optString(ns.path, `${where}.linux.namespaces[${i}].path`);
    });
  }
  if (linux.devices !== undefined) {
    if (!Array.isArray(linux.devices)) fail(`${where}.linux.devices`, 'an array', linux.devices);
    linux.devices.forEach((d, i) => object(d, `${where}.linux.devices[${i}]`));
  }
  if (linux.resources !== undefined) object(linux.resources, `${where}.linux.resources`);

  return spec as unknown as ValidSpec;
}
