/**
 * Chooses the kernel modules a guest needs and puts them in load order.
 *
 * Input is a module tree as a kernel package ships it (`lib/modules/<version>/` with `kernel/**`
 * and `modules.builtin`), or an installed system's `/lib/modules/<version>`. Dependencies come
 * from `modules.dep` when the tree has one (depmod ran), else from each module's `.modinfo`.
 * Compressed modules (.ko.xz, .ko.zst, .ko.gz) are decompressed here, so the agent can load them
 * with a plain finit_module, whatever MODULE_DECOMPRESS the kernel was built with.
 * JS thread; the xz/zstd command-line tools run as child processes.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';

import { NodevisorError } from '../../errors.js';
import { normalizeModuleName, readModInfo } from './modinfo.js';

const execFileAsync = promisify(execFile);

/** What a stock kernel needs to reach the agent and mount an ext4 rootfs on a virtio disk. */
export const DEFAULT_GUEST_MODULES = ['virtio_mmio', 'virtio_blk', 'virtio_console', 'ext4'];

const MODULE_SUFFIXES = ['.ko', '.ko.xz', '.ko.zst', '.ko.gz'];

export interface ResolvedModule {
  name: string;
  /** Path of the (possibly compressed) file in the tree. */
  path: string;
  /** The uncompressed module. */
  data: Buffer;
}

export interface ModuleSelection {
  /** In load order: every module after the ones it depends on. */
  modules: ResolvedModule[];
  /** Requested modules that are built into the kernel (nothing to load). */
  builtin: string[];
}

function moduleNameOf(file: string): string | undefined {
  const suffix = MODULE_SUFFIXES.find((s) => file.endsWith(s));
  return suffix ? normalizeModuleName(basename(file).slice(0, -suffix.length)) : undefined;
}

async function listModuleFiles(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  // Sorted so that, should two files claim one name, the choice does not depend on readdir order.
  const files = entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
  for (const file of files) {
    const name = moduleNameOf(file);
    if (name && !found.has(name)) found.set(name, file);
  }
  return found;
}

async function readLines(path: string): Promise<string[] | undefined> {
  try {
    return (await readFile(path, 'utf8')).split('\n').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** Decompresses a module file by its suffix. */
export async function readModuleFile(path: string): Promise<Buffer> {
  if (path.endsWith('.ko')) return readFile(path);
  if (path.endsWith('.ko.gz')) return gunzipSync(await readFile(path));
  const tool = path.endsWith('.ko.xz') ? 'xz' : 'zstd';
  try {
    const { stdout } = await execFileAsync(tool, ['-dc', path], { encoding: 'buffer', maxBuffer: 256 << 20 });
    return stdout;
  } catch (err) {
    throw new NodevisorError(
      `cannot decompress ${path} with ${tool} (install Debian's ${tool === 'xz' ? 'xz-utils' : 'zstd'}): ${(err as Error).message}`,
      { code: 'ENOENT', cause: err },
    );
  }
}

/**
 * Resolves `wanted` (module names) and their dependencies in the tree `moduleDir`
 * (`.../lib/modules/<version>`). A name that is neither a module file nor built in is an error.
 */
export async function selectModules(moduleDir: string, wanted: string[] = DEFAULT_GUEST_MODULES): Promise<ModuleSelection> {
  const files = await listModuleFiles(moduleDir);
  const builtinNames = new Set(
    ((await readLines(join(moduleDir, 'modules.builtin'))) ?? []).map((l) => moduleNameOf(l)).filter((n): n is string => !!n),
  );
  // modules.dep lines: "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko"
  const depFile = await readLines(join(moduleDir, 'modules.dep'));
  const depsFromFile = new Map<string, string[]>();
  for (const line of depFile ?? []) {
    const [mod, rest] = line.split(':');
    const name = mod ? moduleNameOf(mod) : undefined;
    if (name) depsFromFile.set(name, (rest ?? '').trim().split(/\s+/).filter(Boolean).map((d) => moduleNameOf(d)!).filter(Boolean));
  }

  const modules: ResolvedModule[] = [];
  const builtin: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = async (raw: string, chain: string[]): Promise<void> => {
    const name = normalizeModuleName(raw);
    if (done.has(name)) return;
    if (builtinNames.has(name)) {
      if (chain.length === 0) builtin.push(name);
      done.add(name);
      return;
    }
    const path = files.get(name);
    if (!path) {
      const via = chain.length ? ` (needed by ${chain.join(' <- ')})` : '';
      throw new NodevisorError(`kernel module ${name}${via} is neither in ${moduleDir} nor built in`, { code: 'ENOENT' });
    }
    if (visiting.has(name)) {
      throw new NodevisorError(`kernel module dependency cycle: ${[...chain, name].join(' -> ')}`, { code: 'EINVAL' });
    }
    visiting.add(name);
    const data = await readModuleFile(path);
    const deps = depsFromFile.get(name) ?? readModInfo(data).depends;
    for (const dep of deps) await visit(dep, [...chain, name]);
    visiting.delete(name);
    done.add(name);
    modules.push({ name, path, data });
  };
  for (const name of wanted) await visit(name, []);
  return { modules, builtin };
}
