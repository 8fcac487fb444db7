/**
 * The template's state directory on a tmpfs (Kata B32 `prepareTemplateFiles` and `close`):
 * `mkdir -p` with mode 0700, a tmpfs mounted on it with `nosuid,nodev` and
 * `size=<memory + 8>M`; on close it is unmounted and the directory removed. `prepare` undoes
 * what it made when it fails.
 *
 * The mounts are made with util-linux's `mount`/`umount` commands, run asynchronously (the JS
 * thread never waits on a mount), instead of a mount(2) binding in the addon: a template is
 * made once per factory, so a process spawn costs nothing that matters here.
 *
 * Differences from Kata: a path that already has a mount on it is refused (EBUSY) instead of
 * having a second tmpfs stacked over it; unmounting falls back to a lazy unmount (clones still
 * map the memory file, which keeps a plain unmount busy), as Kata did from `7e6874f8` on.
 */
import { execFile } from 'node:child_process';
import { mkdir, realpath, rm } from 'node:fs/promises';
import { promisify } from 'node:util';

import { NodevisorError } from '../errors.js';
import { logger } from '../log/logger.js';
import { mountAt, readMountInfo } from '../util/mountinfo.js';
import type { StateFs } from './hypervisor.js';

const run = promisify(execFile);

/** Headroom over guest memory for the state file (Kata: `size=<MemorySize+8>M`). */
export const TEMPLATE_TMPFS_EXTRA_MIB = 8;

async function mountedAt(path: string): Promise<boolean> {
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    return false;
  }
  return mountAt(readMountInfo(), real) !== undefined;
}

async function command(args: [string, ...string[]]): Promise<void> {
  const [file, ...rest] = args;
  try {
    await run(file, rest, { timeout: 30_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const why = e.stderr?.trim() || e.message;
    throw new NodevisorError(`${args.join(' ')} failed: ${why}`, { code: e.code === 'ENOENT' ? 'ENOENT' : 'EMOUNT', cause: err });
  }
}

export const tmpfsStateFs: StateFs = {
  async prepare(path: string, sizeMiB: number): Promise<void> {
    // The first directory mkdir made (undefined when `path` existed): what to undo on failure.
    const made = await mkdir(path, { recursive: true, mode: 0o700 });
    try {
      if (await mountedAt(path)) {
        throw new NodevisorError(`a filesystem is already mounted on ${path}`, { code: 'EBUSY', path });
      }
      await command(['mount', '-t', 'tmpfs', '-o', `nosuid,nodev,mode=0700,size=${sizeMiB}M`, 'tmpfs', path]);
    } catch (err) {
      if (made !== undefined) await rm(made, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
  },

  async remove(path: string): Promise<void> {
    const log = logger('factory');
    if (await mountedAt(path)) {
      try {
        await command(['umount', path]);
      } catch (err) {
        log.debug({ err, path }, 'template tmpfs busy, unmounting lazily');
        await command(['umount', '--lazy', path]).catch((lazyErr: unknown) =>
          log.warn({ err: lazyErr, path }, 'cannot unmount the template tmpfs'),
        );
      }
    }
    await rm(path, { recursive: true, force: true }).catch((err: unknown) =>
      log.warn({ err, path }, 'cannot remove the template directory'),
    );
  },
};
