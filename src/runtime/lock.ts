/**
 * One lock per container id, so that concurrent `nodevisor-runtime` commands on one id (the shim
 * and a `ctr` user, two kubelet retries) run one after the other. Each command is a short
 * process, so the lock is a file: `<root>/<id>.lock`, created with O_EXCL (`wx`), holding the
 * holder's pid and that process's start time (from /proc/<pid>/stat, so a recycled pid is not
 * taken for the holder). A lock whose holder is gone (killed mid-command) is stale and broken.
 *
 * Breaking is itself guarded: a breaker takes `<id>.lock.break` (O_EXCL too), reads the lock
 * again and removes it only if it still names the dead holder, so two breakers never remove
 * a lock a third command has just taken. A `.break` file older than BREAK_STALE_MS was left by
 * a breaker that died and is removed.
 *
 * No native code (flock would need the addon); all file I/O is fs/promises on libuv's pool.
 */
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { NodevisorError, errorCode } from '../errors.js';

/** How long a command waits for another one on the same id by default. */
export const LOCK_WAIT_MS = 30_000;
const POLL_MS = 25;
const BREAK_STALE_MS = 2_000;

/** The start time of `pid` in clock ticks since boot, or undefined if it does not exist. */
export function processStartTime(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Whether the process a lock file names is still the one that wrote it. */
function holderAlive(content: string): boolean {
  const [pidText, start] = content.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = processStartTime(pid);
  return now !== undefined && now === start;
}

export function lockPath(root: string, id: string): string {
  return join(root, `${id}.lock`);
}

async function tryCreate(path: string, content: string): Promise<boolean> {
  try {
    const handle = await open(path, 'wx', 0o600);
    try {
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
    return true;
  } catch (err) {
    if (errorCode(err) === 'EEXIST') return false;
    throw err;
  }
}

async function readOrEmpty(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Removes the lock at `path` if it still holds `seen` (a dead holder's content). */
async function breakStale(path: string, seen: string): Promise<void> {
  const guard = `${path}.break`;
  if (!(await tryCreate(guard, `${process.pid}`))) {
    const info = await stat(guard).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > BREAK_STALE_MS) await rm(guard, { force: true });
    return;
  }
  try {
    if ((await readOrEmpty(path)) === seen) await rm(path, { force: true });
  } finally {
    await rm(guard, { force: true });
  }
}

/**
 * Takes the lock of `id` under `root`, waiting up to `waitMs` for its holder. Resolves to the
 * function that releases it. Rejects with code EBUSY naming the holder when the wait ends.
 */
export async function acquireLock(root: string, id: string, waitMs = LOCK_WAIT_MS): Promise<() => Promise<void>> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  const path = lockPath(root, id);
  const content = `${process.pid} ${processStartTime(process.pid) ?? ''}\n`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    if (await tryCreate(path, content)) {
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        // Only our own lock: never one a breaker handed to someone else meanwhile.
        if ((await readOrEmpty(path)) === content) await rm(path, { force: true });
      };
    }
    const seen = await readOrEmpty(path);
    if (seen === undefined) continue;
    // An empty file is a holder between its open and its write: give it time (the deadline).
    if (seen !== '' && !holderAlive(seen)) {
      await breakStale(path, seen);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new NodevisorError(`container ${id} is locked by another nodevisor-runtime command (pid ${seen.trim().split(' ')[0] || '?'}, ${path})`, {
        code: 'EBUSY',
        path,
      });
    }
    await sleep(POLL_MS);
  }
}

/** Runs `fn` holding the lock of `id`. */
export async function withLock<T>(root: string, id: string, fn: () => Promise<T>, waitMs = LOCK_WAIT_MS): Promise<T> {
  const release = await acquireLock(root, id, waitMs);
  try {
    return await fn();
  } finally {
    await release();
  }
}
