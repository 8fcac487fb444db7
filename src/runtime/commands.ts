/**
 * The runtime's commands, runc's semantics: `create` leaves the container created (its
 * process exists, stopped before execve, prestart hooks run), `start` lets it run, `delete`
 * removes a stopped one (`--force`: any). Every command on an id holds that id's lock.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdir, readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';

import { NodevisorError, errorCode } from '../errors.js';
import { containerType, sandboxId as sandboxIdOf } from '../oci/annotations.js';
import { validateId } from '../oci/ids.js';
import { parseConfigJson } from '../oci/parse.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { parseSignal, type GlobalOptions, type ParsedCommandLine } from './args.js';
import { loadConfig } from './config.js';
import type { DaemonOptions } from './daemon.js';
import { withLock } from './lock.js';
import { DAEMON_GONE, request } from './protocol.js';
import { startDaemon, startRelay } from './spawn.js';
import { daemonSocketPath, listStates, readState, removeState, stateDir, stateExists, writeState, type ContainerState } from './state.js';

export const OCI_VERSION = '1.0.2';

export interface Output {
  write(text: string): void;
}

type Flags = ParsedCommandLine['flags'];

function flag(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

/** Whether `err` says the daemon is not there (it ended with its sandbox). */
function daemonGone(err: unknown): boolean {
  return errorCode(err) === DAEMON_GONE;
}

type Status = 'created' | 'running' | 'stopped';

/** The container's live status, asked of its daemon; a daemon that is gone means stopped. */
async function liveStatus(state: ContainerState): Promise<Status> {
  try {
    const reply = await request(state.socket, { op: 'status', id: state.id });
    return reply.status as Status;
  } catch (err) {
    // Gone, or a sandbox that no longer has this container (deleted with its pod).
    if (daemonGone(err) || errorCode(err) === 'ENOENT') return 'stopped';
    throw err;
  }
}

/** runc's `state` object. */
function ociState(state: ContainerState, status: Status): Record<string, unknown> {
  return {
    ociVersion: OCI_VERSION,
    id: state.id,
    pid: status === 'stopped' ? 0 : state.pid,
    status,
    bundle: state.bundle,
    rootfs: state.rootfs,
    created: state.created,
    owner: '',
    annotations: state.annotations,
  };
}

async function writePidFile(path: string | undefined, pid: number): Promise<void> {
  // go-runc parses the whole file as a number: no newline.
  if (path) await writeFileAtomic(resolvePath(path), String(pid));
}

export async function create(global: GlobalOptions, id: string, flags: Flags): Promise<void> {
  validateId(id, 'container id');
  const { root } = global;
  await withLock(root, id, async () => {
    if (await stateExists(root, id)) throw new NodevisorError(`container with id exists: ${id}`, { code: 'EEXIST' });
    const bundle = resolvePath(flag(flags, 'bundle') ?? '.');
    const spec = await parseConfigJson(bundle);
    const consoleSocket = flag(flags, 'console-socket');
    if (spec.process?.terminal === true && !consoleSocket) {
      throw new NodevisorError('process.terminal is set: give --console-socket, where the pty master is sent (runc does not detach a terminal without one)', { code: 'EINVAL' });
    }
    if (consoleSocket && spec.process?.terminal !== true) {
      throw new NodevisorError('--console-socket is given but process.terminal is not set in the bundle', { code: 'EINVAL' });
    }
    const isSandbox = containerType(spec) === 'pod_sandbox';
    const sandboxId = isSandbox ? id : sandboxIdOf(spec);
    let socket: string;
    let daemonPid: number;
    let ownDaemon = false;
    if (isSandbox) {
      const config = await loadConfig();
      socket = daemonSocketPath(root, id);
      const dir = stateDir(root, id);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await mkdir(join(socket, '..'), { recursive: true, mode: 0o700 });
      const options: DaemonOptions = {
        sandboxId: id,
        socket,
        isolation: config.isolation,
        runtimeConfig: config.runtimeConfig,
        agentPath: config.agentPath,
        stateRoot: config.stateRoot,
        mappingRoot: config.mappingRoot,
        systemdCgroup: global.systemdCgroup,
      };
      const logFile = join(dir, 'daemon.log');
      const logFd = openSync(logFile, 'a', 0o600);
      try {
        daemonPid = await startDaemon(options, logFd, logFile).catch(async (err: unknown) => {
          await removeState(root, id);
          throw err;
        });
      } finally {
        closeSync(logFd);
      }
      ownDaemon = true;
    } else {
      const sandbox = await readState(root, sandboxId).catch((err: unknown) => {
        throw new NodevisorError(`container ${id} joins sandbox ${sandboxId}, which this runtime does not know: ${(err as Error).message}`, { code: 'ENOENT', cause: err });
      });
      socket = sandbox.socket;
      daemonPid = sandbox.daemonPid;
    }
    let created = false;
    try {
      await request(socket, { op: 'create', id, bundle });
      created = true;
      const relay = await startRelay(socket, { id }, true, consoleSocket);
      const state: ContainerState = {
        id,
        bundle,
        rootfs: resolvePath(bundle, spec.root.path),
        created: new Date().toISOString(),
        annotations: spec.annotations ?? {},
        sandboxId,
        socket,
        daemonPid,
        pid: relay.pid!,
      };
      await writeState(root, state);
      await writePidFile(flag(flags, 'pid-file'), relay.pid!);
    } catch (err) {
      // Undo: the sandbox and its daemon, or this container in its sandbox, and the state.
      if (ownDaemon) {
        await request(socket, { op: 'shutdown' }).catch(() => {
          try {
            process.kill(daemonPid, 'SIGTERM');
          } catch {
            // gone already
          }
        });
      }
      else if (created) await request(socket, { op: 'delete', id, force: true }).catch(() => undefined);
      await removeState(root, id);
      throw err;
    }
  });
}

/** Whether `pid` has ended (gone, or a zombie its parent has not reaped yet). */
function ended(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** How long a failed start waits for the relay to exit. */
const RELAY_EXIT_MS = 5000;

export async function start(global: GlobalOptions, id: string): Promise<void> {
  await withLock(global.root, id, async () => {
    const state = await readState(global.root, id);
    try {
      await request(state.socket, { op: 'start', id });
    } catch (err) {
      if (daemonGone(err)) throw new NodevisorError(`cannot start container ${id}: it is stopped (its sandbox is gone)`, { code: 'ESTATE', cause: err });
      // runc's init is gone when its start fails: so is our pid-file process before we answer,
      // so the shim sees the task stopped when it deletes it.
      const deadline = Date.now() + RELAY_EXIT_MS;
      while (!ended(state.pid) && Date.now() < deadline) await sleep(20);
      throw err;
    }
  });
}

export async function state(global: GlobalOptions, id: string, out: Output): Promise<void> {
  const s = await readState(global.root, id);
  out.write(`${JSON.stringify(ociState(s, await liveStatus(s)), null, 2)}\n`);
}

export async function kill(global: GlobalOptions, id: string, signalText: string | undefined, all: boolean): Promise<void> {
  const signal = parseSignal(signalText, osConstants.signals as Record<string, number>);
  await withLock(global.root, id, async () => {
    const s = await readState(global.root, id);
    await request(s.socket, { op: 'signal', id, signal, all }).catch((err: unknown) => {
      if (daemonGone(err)) throw new NodevisorError(`container ${id}: container not running`, { code: 'ESRCH', cause: err });
      throw err;
    });
  });
}

export async function remove(global: GlobalOptions, id: string, force: boolean): Promise<void> {
  validateId(id, 'container id');
  await withLock(global.root, id, async () => {
    let s: ContainerState;
    try {
      s = await readState(global.root, id);
    } catch (err) {
      // As runc: a directory without a state (an aborted create) goes; --force hides the rest.
      if (errorCode(err) === 'ENOENT' || errorCode(err) === 'EBADSTATE') {
        await removeState(global.root, id);
        if (force) return;
      }
      throw err;
    }
    try {
      await request(s.socket, { op: 'delete', id, force }, force ? FORCE_DELETE_MS : undefined);
    } catch (err) {
      if (force && errorCode(err) === 'ETIMEDOUT' && id === s.sandboxId && isDaemon(s)) {
        // A daemon that does not answer: SIGTERM makes it delete its sandbox and exit.
        process.kill(s.daemonPid, 'SIGTERM');
      } else if (!daemonGone(err) && !(force && errorCode(err) === 'ENOENT')) throw err;
      // The daemon is gone (it ended with its sandbox): only the state is left.
    }
    await removeState(global.root, id);
  });
}

/** How long `delete --force` waits for the daemon before it signals it. */
const FORCE_DELETE_MS = 30_000;

/** Whether the state's daemon pid is still that daemon (its command line names its socket). */
function isDaemon(s: ContainerState): boolean {
  try {
    return readFileSync(`/proc/${s.daemonPid}/cmdline`, 'utf8').includes(JSON.stringify(s.socket).slice(1, -1));
  } catch {
    return false;
  }
}

/** The OCI process of `exec`: the --process file, or the command after the id (runc's form). */
async function execProcess(s: ContainerState, flags: Flags, args: string[]): Promise<unknown> {
  const file = flag(flags, 'process');
  if (file) {
    const text = await readFile(file, 'utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new NodevisorError(`--process ${file} is not JSON: ${(err as Error).message}`, { code: 'EINVAL', cause: err });
    }
  }
  const spec = JSON.parse(await readFile(join(s.bundle, 'config.json'), 'utf8')) as { process?: Record<string, unknown> };
  const base = spec.process ?? {};
  const user = flag(flags, 'user');
  let userField = base.user;
  if (user) {
    const [uid, gid] = user.split(':');
    if (!/^\d+$/.test(uid ?? '') || (gid !== undefined && !/^\d+$/.test(gid))) throw new NodevisorError(`--user must be UID[:GID], not ${JSON.stringify(user)}`, { code: 'EINVAL' });
    userField = { uid: Number(uid), gid: Number(gid ?? 0) };
  }
  return { ...base, terminal: flags.tty === true, args, cwd: flag(flags, 'cwd') ?? base.cwd ?? '/', user: userField };
}

/** Resolves to the exit status of `exec` (0 with --detach, else the process's). */
export async function exec(global: GlobalOptions, id: string, flags: Flags, args: string[]): Promise<number> {
  const consoleSocket = flag(flags, 'console-socket');
  const s = await readState(global.root, id);
  const process_ = (await execProcess(s, flags, args)) as { terminal?: unknown };
  if (process_.terminal === true && !consoleSocket) {
    throw new NodevisorError('the exec process has terminal set: give --console-socket, where the pty master is sent', { code: 'EINVAL' });
  }
  const execId = `exec-${randomBytes(8).toString('hex')}`;
  const detach = flags.detach === true;
  const relay = await withLock(global.root, id, () => startRelay(s.socket, { id, execId, process: process_ }, detach, consoleSocket));
  await writePidFile(flag(flags, 'pid-file'), relay.pid!);
  return detach ? 0 : relay.exited;
}

export async function ps(global: GlobalOptions, id: string, format: string, out: Output): Promise<void> {
  const s = await readState(global.root, id);
  let pids: number[] = [];
  try {
    pids = (await request(s.socket, { op: 'ps', id })).pids as number[];
  } catch (err) {
    if (!daemonGone(err)) throw err;
  }
  if (format === 'json') out.write(`${JSON.stringify(pids)}\n`);
  else out.write(`PID\n${pids.map((p) => `${p}\n`).join('')}`);
}

export async function list(global: GlobalOptions, format: string, quiet: boolean, out: Output): Promise<void> {
  const rows: Record<string, unknown>[] = [];
  for (const id of await listStates(global.root)) {
    const s = await readState(global.root, id).catch(() => undefined);
    if (s) rows.push(ociState(s, await liveStatus(s)));
  }
  if (quiet) out.write(rows.map((r) => `${String(r.id)}\n`).join(''));
  else if (format === 'json') out.write(`${JSON.stringify(rows)}\n`);
  else {
    const lines = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'], ...rows.map((r) => [r.id, r.pid, r.status, r.bundle, r.created, 'root'].map(String))];
    const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
    out.write(lines.map((l) => `${l.map((c, i) => c.padEnd(widths[i]!)).join('   ').trimEnd()}\n`).join(''));
  }
}

/** runc's `features` JSON (runtime-spec features.md): what this runtime understands. */
export function features(): Record<string, unknown> {
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: OCI_VERSION,
    hooks: ['prestart', 'poststart', 'poststop'],
    mountOptions: ['bind', 'rbind', 'ro', 'rw', 'nosuid', 'nodev', 'noexec'],
    linux: {
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'user'],
      cgroup: { v1: false, v2: false, systemd: false },
      seccomp: { enabled: true },
    },
    annotations: { 'io.github.nodevisor.runtime': 'true' },
  };
}

export function notSupported(command: string): never {
  throw new NodevisorError(`${command} is not supported by nodevisor-runtime: the sandbox agent has no freezer`, { code: 'ENOTSUP' });
}
