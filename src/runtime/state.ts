/**
 * What `nodevisor-runtime` remembers about a container between its short-lived commands:
 * `<root>/<id>/state.json`, written atomically (a reader sees the old file or the new one),
 * read back with its shape checked (a damaged file is an error naming it, not a crash).
 *
 * The live part of the state (running or stopped, the exec'd processes) is asked of the
 * sandbox daemon; this file holds what does not change after `create`.
 */
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

import { NodevisorError, errorCode } from '../errors.js';
import { validateId } from '../oci/ids.js';
import { writeFileAtomic } from '../util/atomic-write.js';

export interface ContainerState {
  id: string;
  /** Absolute bundle path. */
  bundle: string;
  /** The rootfs directory (runc's `rootfs` field of `state`). */
  rootfs: string;
  /** ISO time of `create`. */
  created: string;
  annotations: Record<string, string>;
  /** The sandbox the container runs in (its own id for a sandbox). */
  sandboxId: string;
  /** The unix socket of the sandbox's daemon. */
  socket: string;
  /** The daemon's pid (for `delete --force` when it does not answer). */
  daemonPid: number;
  /** The host pid written to --pid-file: the process relaying the container's stdio. */
  pid: number;
}

const FILE = 'state.json';

export function stateDir(root: string, id: string): string {
  return join(root, validateId(id, 'container id'));
}

/**
 * The daemon socket of `sandboxId`: in its state directory when the path fits a unix socket
 * address (108 bytes with the NUL), else under `<root>/.s/` by a hash of the id (containerd's
 * ids are 64 hex characters and its roots are long).
 */
export function daemonSocketPath(root: string, sandboxId: string): string {
  const direct = join(root, sandboxId, 'daemon.sock');
  if (Buffer.byteLength(direct) <= 100) return direct;
  const short = join(root, '.s', `${createHash('sha256').update(sandboxId).digest('hex').slice(0, 16)}.sock`);
  if (Buffer.byteLength(short) <= 100) return short;
  throw new NodevisorError(`--root ${root} is too long for a unix socket path under it`, { code: 'ENAMETOOLONG' });
}

function checkState(value: unknown, path: string): ContainerState {
  const bad = (what: string) => new NodevisorError(`${path} is damaged: ${what}`, { code: 'EBADSTATE', path });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('not a JSON object');
  const v = value as Record<string, unknown>;
  for (const key of ['id', 'bundle', 'rootfs', 'created', 'sandboxId', 'socket'] as const) {
    if (typeof v[key] !== 'string') throw bad(`${key} is not a string`);
  }
  for (const key of ['pid', 'daemonPid'] as const) {
    if (!Number.isInteger(v[key]) || (v[key] as number) < 0) throw bad(`${key} is not a pid`);
  }
  if (typeof v.annotations !== 'object' || v.annotations === null) throw bad('annotations is not an object');
  return v as unknown as ContainerState;
}

/** Writes the state of `state.id` (its directory is made if needed). */
export async function writeState(root: string, state: ContainerState): Promise<void> {
  const dir = stateDir(root, state.id);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(dir, FILE), `${JSON.stringify(state, null, 2)}\n`);
}

/** The state of `id`, or an ENOENT error naming the container ("container ... does not exist", runc's words). */
export async function readState(root: string, id: string): Promise<ContainerState> {
  const path = join(stateDir(root, id), FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') throw new NodevisorError(`container ${id} does not exist`, { code: 'ENOENT', path });
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new NodevisorError(`${path} is damaged: ${(err as Error).message}`, { code: 'EBADSTATE', path, cause: err });
  }
  return checkState(parsed, path);
}

/** Whether a state exists for `id`. */
export async function stateExists(root: string, id: string): Promise<boolean> {
  return readFile(join(stateDir(root, id), FILE)).then(
    () => true,
    (err: unknown) => (errorCode(err) === 'ENOENT' ? false : Promise.reject(err)),
  );
}

/** Removes the state of `id` (its whole directory). */
export async function removeState(root: string, id: string): Promise<void> {
  await rm(stateDir(root, id), { recursive: true, force: true });
}

/** The ids that have a state under `root`, sorted. */
export async function listStates(root: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return [];
    throw err;
  }
  const ids: string[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    if (await stateExists(root, e.name).catch(() => false)) ids.push(e.name);
  }
  return ids.sort();
}
