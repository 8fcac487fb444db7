/**
 * `nodevisor guest build`: a kernel and an initramfs for the Linux guest (DESIGN §4).
 *
 * The kernel and its modules come from Debian's cloud kernel package (fetched and unpacked with
 * Debian's tools, cached per package version) or from paths the caller gives. The initramfs holds
 * the agent as /init, the modules the guest needs (virtio-mmio, virtio-blk, virtio-console, ext4
 * and their dependencies, uncompressed, in load order) and /lib/modules/nodevisor.list, which the
 * agent reads at boot. It is written deterministically (see cpio.ts): the same kernel package and
 * agent binary give the same bytes. JS thread; external tools run as child processes.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';

import { NodevisorError } from '../../errors.js';
import { copyFileAtomic, writeFileAtomic } from '../../util/atomic-write.js';
import { agentBinaryPath } from '../agent-binary.js';
import { writeCpio, type CpioEntry } from './cpio.js';
import { DEFAULT_KERNEL_PACKAGE, downloadPackage, extractPackage, resolveKernelPackage, type KernelPackage } from './debian.js';
import { DEFAULT_GUEST_MODULES, selectModules } from './modules.js';
import { extractVmlinux } from './vmlinux.js';

export interface GuestBuildOptions {
  /** Debian package to fetch (a metapackage is resolved to its versioned image package). */
  package?: string;
  /** A kernel image to use instead of Debian's package; needs `modules`. */
  kernel?: string;
  /** The `lib/modules/<version>` directory that belongs to `kernel`. */
  modules?: string;
  /** The agent binary for /init; default: the one `npm ci` built. */
  agent?: string;
  /** Modules wanted besides DEFAULT_GUEST_MODULES (dependencies are added automatically). */
  extraModules?: string[];
  /** Default: $XDG_CACHE_HOME/nodevisor, else ~/.cache/nodevisor. */
  cacheDir?: string;
  /** Called with one line per step (the CLI prints them on stderr). */
  progress?: (line: string) => void;
}

export interface GuestImage {
  /** The kernel image (bzImage). */
  kernel: string;
  /**
   * The ELF kernel unpacked from it, for booting through the PVH entry (what nodevisor's loader
   * takes); absent when the kernel is not a bzImage or its decompressor (lz4, xz, zstd) is missing.
   */
  vmlinux?: string;
  /** The initramfs (uncompressed cpio newc). */
  initrd: string;
  /** The kernel's release (`uname -r` in the guest), e.g. 6.1.0-56-cloud-amd64. */
  kernelVersion: string;
  /** The Debian package the kernel came from, when it did. */
  package?: KernelPackage;
  /** Modules in the initramfs, in load order. */
  modules: string[];
  /** Requested modules that the kernel has built in. */
  builtin: string[];
  /** SHA-256 of the initramfs. */
  initrdSha256: string;
}

export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'nodevisor');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The single directory under `<root>/lib/modules` (a kernel package ships exactly one). */
async function findModuleDir(root: string): Promise<string> {
  const base = join(root, 'lib', 'modules');
  const versions = (await readdir(base).catch(() => [])).filter((v) => !v.startsWith('.'));
  if (versions.length !== 1) {
    throw new NodevisorError(`expected one kernel version under ${base}, found ${versions.length ? versions.join(', ') : 'none'}`, {
      code: 'ENOENT',
    });
  }
  return join(base, versions[0]!);
}

/** The initramfs entries for an agent binary and modules of `kernelVersion`, in any order. */
export function initramfsEntries(agent: Buffer, kernelVersion: string, modules: { name: string; data: Buffer }[]): CpioEntry[] {
  const moduleDir = `lib/modules/${kernelVersion}`;
  const entries: CpioEntry[] = [
    { type: 'file', path: 'init', data: agent, mode: 0o755 },
    // The kernel opens /dev/console as init's stdin/stdout/stderr before devtmpfs is mounted.
    { type: 'dir', path: 'dev' },
    { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { type: 'dir', path: 'proc', mode: 0o555 },
    { type: 'dir', path: 'sys', mode: 0o555 },
    { type: 'dir', path: 'run' },
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    { type: 'dir', path: 'lib' },
    { type: 'dir', path: 'lib/modules' },
    { type: 'dir', path: moduleDir },
    {
      type: 'file',
      path: 'lib/modules/nodevisor.list',
      data: Buffer.from(modules.map((m) => `/${moduleDir}/${m.name}.ko\n`).join('')),
    },
  ];
  for (const m of modules) entries.push({ type: 'file', path: `${moduleDir}/${m.name}.ko`, data: m.data });
  return entries;
}

/** Builds (or rebuilds, byte-identically) the guest kernel and initramfs; see GuestBuildOptions. */
export async function buildGuestImage(options: GuestBuildOptions = {}): Promise<GuestImage> {
  const say = options.progress ?? (() => undefined);
  const cache = resolve(options.cacheDir ?? defaultCacheDir());
  if ((options.kernel === undefined) !== (options.modules === undefined)) {
    throw new NodevisorError('--kernel and --modules go together: give both, or neither to fetch Debian\'s kernel', {
      code: 'EINVAL',
    });
  }

  let kernel: string;
  let moduleDir: string;
  let pkg: KernelPackage | undefined;
  let outDir: string;
  if (options.kernel !== undefined && options.modules !== undefined) {
    kernel = resolve(options.kernel);
    moduleDir = resolve(options.modules);
    for (const p of [kernel, moduleDir]) {
      if (!(await exists(p))) throw new NodevisorError(`${p} does not exist`, { code: 'ENOENT', path: p });
    }
    outDir = join(cache, 'guest', `custom-${basename(moduleDir)}`);
  } else {
    const wanted = options.package ?? DEFAULT_KERNEL_PACKAGE;
    say(`resolving ${wanted} with apt-cache`);
    pkg = await resolveKernelPackage(wanted);
    outDir = join(cache, 'guest', `${pkg.name}_${pkg.version}`);
    const tree = join(outDir, 'package');
    if (await exists(join(tree, '.complete'))) {
      say(`using the cached ${pkg.name} ${pkg.version} (${tree})`);
    } else {
      say(`downloading ${pkg.name} ${pkg.version} with apt-get download`);
      const deb = await downloadPackage(pkg, outDir);
      say(`unpacking ${basename(deb)}`);
      await extractPackage(deb, tree);
      await writeFile(join(tree, '.complete'), `${pkg.name} ${pkg.version}\n`);
    }
    moduleDir = await findModuleDir(tree);
    kernel = join(tree, 'boot', `vmlinuz-${basename(moduleDir)}`);
    if (!(await exists(kernel))) {
      throw new NodevisorError(`${pkg.name} has no boot/vmlinuz-${basename(moduleDir)}`, { code: 'ENOENT', path: kernel });
    }
  }
  const kernelVersion = basename(moduleDir);

  const wantedModules = [...DEFAULT_GUEST_MODULES, ...(options.extraModules ?? [])];
  say(`resolving modules ${wantedModules.join(', ')} in ${moduleDir}`);
  const selection = await selectModules(moduleDir, wantedModules);
  say(
    `modules in load order: ${selection.modules.map((m) => m.name).join(' ') || '(none)'}` +
      (selection.builtin.length ? `; built in: ${selection.builtin.join(' ')}` : ''),
  );

  const agentPath = options.agent ? resolve(options.agent) : agentBinaryPath();
  const agent = await readFile(agentPath);
  const archive = writeCpio(initramfsEntries(agent, kernelVersion, selection.modules));
  await mkdir(outDir, { recursive: true });
  const initrd = join(outDir, 'initramfs.cpio');
  const kernelOut = join(outDir, 'vmlinuz');
  // Write-then-rename: a reader (a VM being started) never sees half a file.
  await writeFileAtomic(initrd, archive);
  if (resolve(kernel) !== kernelOut) await copyFileAtomic(kernel, kernelOut);
  let vmlinux: string | undefined;
  try {
    const elf = await extractVmlinux(await readFile(kernelOut));
    vmlinux = join(outDir, 'vmlinux');
    await writeFileAtomic(vmlinux, elf);
    say(`unpacked the ELF kernel for PVH boot: ${vmlinux}`);
  } catch (err) {
    say(`no ELF kernel unpacked (${(err as Error).message}); boot loaders that take a bzImage can use ${kernelOut}`);
  }
  const initrdSha256 = createHash('sha256').update(archive).digest('hex');
  say(`wrote ${initrd} (${archive.length} bytes, sha256 ${initrdSha256.slice(0, 16)}...) and ${kernelOut}`);

  const image: GuestImage = {
    kernel: kernelOut,
    initrd,
    kernelVersion,
    modules: selection.modules.map((m) => m.name),
    builtin: selection.builtin,
    initrdSha256,
    ...(vmlinux ? { vmlinux } : {}),
    ...(pkg ? { package: pkg } : {}),
  };
  await writeFile(join(outDir, 'image.json'), `${JSON.stringify(image, null, 2)}\n`);
  return image;
}
