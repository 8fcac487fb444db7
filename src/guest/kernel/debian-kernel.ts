/**
 * Debian's cloud kernel for booting Linux guests, in both forms nodevisor's VMM takes: the
 * bzImage from the package (Linux 64-bit boot protocol) and the ELF vmlinux unpacked from it
 * (PVH entry). Fetching reuses src/guest/image (apt-cache to resolve the metapackage,
 * `apt-get download`, `dpkg-deb -x`, payload decompression) and its cache directory, so the
 * guest image builder and this share one download: <cache>/guest/<package>_<version>/.
 * JS thread; Debian's tools run as child processes.
 */
import { access, readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { NodevisorError } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { defaultCacheDir } from '../image/build.js';
import { DEFAULT_KERNEL_PACKAGE, downloadPackage, extractPackage, resolveKernelPackage, type KernelPackage } from '../image/debian.js';
import { extractVmlinux } from '../image/vmlinux.js';
import { findPvhNote } from './pvh-note.js';

export interface DebianKernel {
  package: KernelPackage;
  /** `uname -r` of the kernel, e.g. 6.1.0-56-cloud-amd64. */
  release: string;
  /** The bzImage (boot/vmlinuz-<release> from the package). */
  bzImage: string;
  /** The ELF kernel unpacked from the bzImage, when it has a PVH entry note. */
  vmlinux?: string;
  /** Why there is no `vmlinux` (no decompressor, or no PVH note). */
  vmlinuxMissing?: string;
}

export interface FetchKernelOptions {
  /** Default linux-image-cloud-amd64 (resolved to its versioned image package). */
  package?: string;
  /** Default $XDG_CACHE_HOME/nodevisor, else ~/.cache/nodevisor. */
  cacheDir?: string;
  progress?: (line: string) => void;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Fetches (or finds in the cache) Debian's kernel package and returns its bzImage and vmlinux. */
export async function fetchDebianKernel(options: FetchKernelOptions = {}): Promise<DebianKernel> {
  const say = options.progress ?? (() => undefined);
  const cache = resolve(options.cacheDir ?? defaultCacheDir());
  const pkg = await resolveKernelPackage(options.package ?? DEFAULT_KERNEL_PACKAGE);
  const dir = join(cache, 'guest', `${pkg.name}_${pkg.version}`);
  const tree = join(dir, 'package');
  if (await exists(join(tree, '.complete'))) {
    say(`using the cached ${pkg.name} ${pkg.version}`);
  } else {
    say(`downloading ${pkg.name} ${pkg.version} with apt-get download`);
    await extractPackage(await downloadPackage(pkg, dir), tree);
    await writeFile(join(tree, '.complete'), `${pkg.name} ${pkg.version}\n`);
  }
  const boot = join(tree, 'boot');
  const images = (await readdir(boot).catch(() => [] as string[])).filter((f) => f.startsWith('vmlinuz-'));
  if (images.length !== 1) {
    throw new NodevisorError(`${pkg.name} has ${images.length} boot/vmlinuz-* files, expected one`, { code: 'ENOENT', path: boot });
  }
  const bzImage = join(boot, images[0]!);
  const kernel: DebianKernel = { package: pkg, release: images[0]!.slice('vmlinuz-'.length), bzImage };

  const vmlinux = join(dir, 'vmlinux');
  try {
    if (!(await exists(vmlinux))) {
      say('unpacking the ELF vmlinux from the bzImage');
      await writeFileAtomic(vmlinux, await extractVmlinux(await readFile(bzImage)));
    }
    const note = findPvhNote(await readFile(vmlinux));
    if ('entry' in note) kernel.vmlinux = vmlinux;
    else kernel.vmlinuxMissing = note.missing;
  } catch (err) {
    kernel.vmlinuxMissing = `cannot unpack the vmlinux: ${(err as Error).message}`;
  }
  return kernel;
}
