/**
 * Fetching Debian's kernel package with Debian's own tools: `apt-cache` resolves the
 * metapackage (linux-image-cloud-amd64) to the versioned image package it depends on and its
 * candidate version, `apt-get download` fetches the .deb (no root needed, nothing installed),
 * `dpkg-deb -x` unpacks it. JS thread; the tools run as child processes.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { NodevisorError } from '../../errors.js';

const execFileAsync = promisify(execFile);

export const DEFAULT_KERNEL_PACKAGE = 'linux-image-cloud-amd64';

/** The error every step raises when Debian's tools are missing or fail. */
export function noDebianTools(detail: string, cause?: unknown): NodevisorError {
  return new NodevisorError(
    `cannot fetch the Debian kernel package: ${detail}. ` +
      'On a host without Debian\'s package tools (apt-get, apt-cache, dpkg-deb) pass a kernel and its modules instead: ' +
      '`nodevisor guest build --kernel <vmlinuz> --modules <lib/modules/VERSION directory>`.',
    { code: 'ENODEBIAN', cause },
  );
}

async function run(tool: string, args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(tool, args, {
      cwd,
      encoding: 'utf8',
      maxBuffer: 16 << 20,
      env: { ...process.env, LC_ALL: 'C' },
    });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw noDebianTools(`\`${tool}\` is not installed`, err);
    const stderr = (e.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    throw noDebianTools(`\`${tool} ${args.join(' ')}\` failed${stderr ? `: ${stderr}` : ''}`, err);
  }
}

export interface KernelPackage {
  /** The versioned binary package, e.g. linux-image-6.1.0-56-cloud-amd64. */
  name: string;
  /** Its Debian version, e.g. 6.1.192-2. */
  version: string;
}

/** `apt-cache policy` → the candidate version of `pkg`, or undefined. */
export async function candidateVersion(pkg: string): Promise<string | undefined> {
  const out = await run('apt-cache', ['policy', pkg]);
  const m = /^\s*Candidate:\s*(\S+)/m.exec(out);
  return m && m[1] !== '(none)' ? m[1] : undefined;
}

/**
 * Resolves a metapackage to the image package it depends on (or takes a versioned package as
 * it is), with the candidate version that apt-get would download.
 */
export async function resolveKernelPackage(pkg: string = DEFAULT_KERNEL_PACKAGE): Promise<KernelPackage> {
  if (!/^[a-z0-9][a-z0-9.+-]+$/.test(pkg)) {
    throw new NodevisorError(`invalid Debian package name ${JSON.stringify(pkg)}`, { code: 'EINVAL' });
  }
  let name = pkg;
  const depends = await run('apt-cache', ['depends', '--no-recommends', '--no-suggests', pkg]);
  const versioned = /^\s*Depends:\s*(linux-image-\d\S*)/m.exec(depends);
  if (versioned) name = versioned[1]!;
  const version = await candidateVersion(name);
  if (!version) {
    throw noDebianTools(`no installable candidate for ${name} (run \`apt-get update\`, or check the sources list)`);
  }
  return { name, version };
}

/**
 * Downloads `pkg` at `version` into `dir` unless a .deb for it is already there; returns its path.
 * apt-get writes to the current directory, so it runs in a private temporary one first and the
 * file is renamed into place (a concurrent build never sees half a file).
 */
export async function downloadPackage(pkg: KernelPackage, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const existing = (await readdir(dir)).find((f) => f.startsWith(`${pkg.name}_`) && f.endsWith('.deb'));
  if (existing) return join(dir, existing);
  const staging = join(dir, `.download-${process.pid}-${Date.now()}`);
  await mkdir(staging, { recursive: true });
  try {
    await run('apt-get', ['download', '-q', `${pkg.name}=${pkg.version}`], staging);
    const file = (await readdir(staging)).find((f) => f.endsWith('.deb'));
    if (!file) throw noDebianTools(`apt-get download ${pkg.name} produced no .deb`);
    await rename(join(staging, file), join(dir, file));
    return join(dir, file);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Unpacks a .deb's files into `dir` (dpkg-deb -x; nothing is installed). */
export async function extractPackage(deb: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await run('dpkg-deb', ['-x', deb, dir]);
}
