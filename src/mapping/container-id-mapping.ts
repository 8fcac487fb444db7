/**
 * Container id → sandbox id, on disk, so separate processes (a CLI, a shim) agree on which
 * VM runs a container (Kata B23–B27).
 *
 * Layout, as Kata's: an empty directory `<root>/<containerId>/<sandboxId>/`.
 *
 * Atomicity (Kata has none): an entry is built complete in a hidden temporary directory and
 * renamed into place, so `<root>/<containerId>` is always either absent or a directory with
 * exactly one child. Replacing an entry renames the old one out of the way first (a reader in
 * that instant sees "unknown", never a half-written or doubled entry). Two concurrent `add`s
 * for one container both loop until their own rename lands; the last one wins and exactly
 * one mapping is left. Ids are validated, so hidden names (leading dot) never clash with ids.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { NodevisorError, errorCode } from '../errors.js';
import { logger } from '../log/logger.js';
import { validateId } from '../oci/ids.js';
import { withSpan } from '../trace/tracing.js';

export const DEFAULT_MAPPING_ROOT = '/run/nodevisor/mapping';

/** How often `add` retries when other writers keep replacing the same entry. */
const MAX_ADD_ATTEMPTS = 1000;
/** How often `fetch` reads an entry again that it found empty (see there). */
const EMPTY_READ_RETRIES = 20;

function fsError(action: string, path: string, err: unknown): NodevisorError {
  return new NodevisorError(`${action} ${path}: ${(err as Error).message}`, {
    code: errorCode(err) ?? 'EIO',
    path,
    cause: err,
  });
}

export class ContainerIdMapping {
  readonly root: string;

  constructor(root: string = DEFAULT_MAPPING_ROOT) {
    if (typeof root !== 'string' || root === '') throw new NodevisorError('mapping root must be a path', { code: 'EINVAL' });
    this.root = root;
  }

  private entry(containerId: string): string {
    return join(this.root, containerId);
  }

  private scratch(containerId: string, what: string): string {
    return join(this.root, `.${containerId}.${what}.${randomBytes(6).toString('hex')}`);
  }

  /** Records that `containerId` runs in `sandboxId`, replacing any previous mapping. */
  async add(containerId: string, sandboxId: string): Promise<void> {
    const cid = validateId(containerId, 'container ID');
    const sid = validateId(sandboxId, 'sandbox ID');
    await withSpan('addContainerIDMapping', { container: cid, sandbox: sid }, async () => {
      const entry = this.entry(cid);
      const staged = this.scratch(cid, 'new');
      try {
        await mkdir(join(staged, sid), { recursive: true, mode: 0o750 });
      } catch (err) {
        await rm(staged, { recursive: true, force: true });
        throw fsError('cannot create the mapping entry', staged, err);
      }
      try {
        for (let attempt = 0; ; attempt++) {
          try {
            await rename(staged, entry);
            break;
          } catch (err) {
            const code = errorCode(err);
            if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || attempt >= MAX_ADD_ATTEMPTS) {
              throw fsError('cannot install the mapping entry', entry, err);
            }
            // An entry is there (older, or a concurrent add's): move it aside and retry.
            await this.discard(entry);
          }
        }
      } catch (err) {
        await rm(staged, { recursive: true, force: true });
        throw err;
      }
      logger('mapping', { container: cid, sandbox: sid }).debug('container id mapped');
    });
  }

  /**
   * The sandbox of `containerId`, or undefined when the container is unknown. An entry with
   * no or several sandboxes (written by something else) is an error.
   */
  async fetch(containerId: string): Promise<string | undefined> {
    const cid = validateId(containerId, 'container ID');
    const entry = this.entry(cid);
    let names: string[] = [];
    for (let attempt = 0; attempt < EMPTY_READ_RETRIES; attempt++) {
      try {
        names = await readdir(entry);
      } catch (err) {
        if (errorCode(err) === 'ENOENT') return undefined;
        throw fsError('cannot read the mapping entry', entry, err);
      }
      // An empty read can be an entry a concurrent add or delete has just renamed away and is
      // emptying: the path now names the next entry, or none. Read again before calling it corrupt.
      if (names.length !== 0) break;
    }
    if (names.length !== 1) {
      throw new NodevisorError(
        `container id mapping ${entry} is corrupt: it must hold exactly one sandbox, it holds ${names.length}` +
          (names.length ? ` (${names.slice(0, 5).join(', ')})` : ''),
        { code: 'EBADMAPPING', path: entry },
      );
    }
    return names[0];
  }

  /** Forgets `containerId`; a container that has no mapping is not an error. */
  async delete(containerId: string): Promise<void> {
    const cid = validateId(containerId, 'container ID');
    await withSpan('delContainerIDMapping', { container: cid }, async () => {
      await this.discard(this.entry(cid));
      logger('mapping', { container: cid }).debug('container id mapping deleted');
    });
  }

  /** Atomically removes `entry` from view (rename), then deletes it. */
  private async discard(entry: string): Promise<void> {
    const base = entry.slice(this.root.length + 1);
    const tomb = this.scratch(base, 'old');
    try {
      await rename(entry, tomb);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return;
      throw fsError('cannot remove the mapping entry', entry, err);
    }
    await rm(tomb, { recursive: true, force: true });
  }
}
