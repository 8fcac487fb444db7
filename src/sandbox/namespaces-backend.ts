/**
 * The `'namespaces'` isolation backend: the guest agent binary runs on the host as the sandbox's
 * init, in new PID, mount, UTS and IPC namespaces (and a user namespace when the spec asks),
 * started from inside the sandbox's network namespace, speaking the agent protocol over a
 * socketpair (fd 3). A container's block rootfs is handed to it by device path (an image file
 * first gets a loop device the sandbox owns).
 *
 * This isolates like runc, not like a VM: the containers run on the host's kernel. It exists
 * for machines without usable KVM and for development.
 *
 * util-linux's `unshare` makes the namespaces (it stays as the agent's parent, `--kill-child`
 * ties the agent's life to it) and `nsenter` runs `mount` in the agent's mount namespace for
 * the spec mounts the protocol cannot carry. All of it are child processes: the JS thread only
 * changes namespace (the netns) for the synchronous spawn.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { basename, join, normalize } from 'node:path';
import type { Duplex } from 'node:stream';
import { promisify } from 'node:util';

import { AgentClient } from '../agent/client.js';
import { NodevisorError, wrapError } from '../errors.js';
import { agentBinaryPath } from '../guest/agent-binary.js';
import { logger } from '../log/logger.js';
import { enterNetNs } from '../netns/enter.js';
import type { Mount } from '../oci/spec.js';
import { inspectBlockDevice } from '../rootfs/blockdev.js';
import { EPHEMERAL_TYPE } from '../rootfs/ephemeral.js';
import type { AgentDisk, BackendStartOptions, SandboxBackend } from './backend.js';
import { attachLoopDevice, detachLoopDevice } from './loop-device.js';

const run = promisify(execFile);

/** How long the agent may take to answer its first ping. */
const AGENT_READY_MS = 10_000;
/** How long the agent may take to kill its containers and exit once its channel closes. */
const AGENT_EXIT_MS = 5_000;
/** Agent stderr kept for error messages. */
const STDERR_KEEP = 4096;

/** Destinations the agent sets up itself (its own /proc and /dev) or that need a VM (/sys). */
const SKIPPED_DESTINATIONS = /^\/(proc|dev|sys)(\/|$)/;

function wantsUserNamespace(options: BackendStartOptions): boolean {
  return (options.spec.linux.namespaces ?? []).some((ns) => ns.type === 'user' && !ns.path);
}

export async function startNamespacesBackend(options: BackendStartOptions): Promise<SandboxBackend> {
  const agentPath = options.agentPath ?? agentBinaryPath();
  const log = logger('sandbox', { sandbox: options.sandboxId });
  await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  const unshareArgs = [
    '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--uts', '--ipc',
    // A user namespace maps the sandbox's root to the caller. The kernel then refuses to mount
    // block filesystems (ext4) in it: such a sandbox needs a host-mounted rootfs.
    ...(wantsUserNamespace(options) ? ['--user', '--map-root-user'] : []),
    agentPath, '--channel-fd', '3',
  ];
  let child: ChildProcess;
  try {
    // Spawned with the JS thread in the sandbox's netns: unshare and the agent live there.
    const start = () => spawn('unshare', unshareArgs, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    child = options.netNsPath ? enterNetNs(options.netNsPath, start) : start();
  } catch (err) {
    throw wrapError('cannot start the agent', err);
  }
  let stderr = '';
  const keep = (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-STDERR_KEEP);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', (chunk: Buffer) => {
    keep(chunk);
    log.debug({ agent: chunk.toString().trimEnd() }, 'agent says');
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const socket = child.stdio[3] as Duplex;
  const agent = new AgentClient(socket, { timeoutMs: 30_000 });
  agent.on('protocolError', (err) => log.warn({ err }, 'agent protocol error'));
  const backend = new NamespacesBackend(child, socket, agent, exited, options);
  try {
    const pong = await Promise.race([
      agent.request<{ agent: string }>('ping', {}, { timeoutMs: AGENT_READY_MS }),
      spawnError.then((err) => Promise.reject(err)),
    ]);
    if (pong.agent !== 'nodevisor-agent') {
      throw new NodevisorError(`${agentPath} answered as ${JSON.stringify(pong.agent)}, not nodevisor-agent`, { code: 'EPROTO' });
    }
  } catch (err) {
    await backend.stop();
    const said = stderr.trim();
    throw wrapError(`the agent (${agentPath}) did not come up${said ? ` (it said: ${said})` : ''}`, err);
  }
  log.debug({ pid: child.pid }, 'namespaces sandbox agent ready');
  return backend;
}

class NamespacesBackend implements SandboxBackend {
  readonly isolation = 'namespaces' as const;
  #stopped: Promise<void> | undefined;
  readonly #ephemeral = new Map<string, Promise<string>>();

  constructor(
    private readonly child: ChildProcess,
    private readonly socket: Duplex,
    readonly agent: AgentClient,
    private readonly exited: Promise<void>,
    private readonly options: BackendStartOptions,
  ) {}

  rootfsMountPoint(containerId: string): string {
    return join(this.options.stateDir, 'containers', containerId, 'rootfs');
  }

  hostRootfs(target: string): string {
    return target;
  }

  async attachDisk(containerId: string, path: string, readOnly: boolean): Promise<AgentDisk> {
    const info = await inspectBlockDevice(path);
    if (info.kind === 'block') return { locator: { device: path }, release: async () => undefined };
    if (info.kind !== 'file') {
      throw new NodevisorError(`rootfs source ${path} of ${containerId} is neither a block device nor an image file`, { code: 'EINVAL', path });
    }
    const device = await attachLoopDevice(path, readOnly);
    let released: Promise<void> | undefined;
    return {
      locator: { device },
      // Detaching a loop device that is mounted only marks it autoclear: the kernel frees it
      // when the agent's mount goes, even if this process dies first and never gets to
      // release it. From then on the number is not ours: release must not touch it again.
      mounted: () => (released ??= detachLoopDevice(device)),
      release: () => (released ??= detachLoopDevice(device)),
    };
  }

  /** Runs a command in the agent's mount namespace (unshare's own, which the agent inherited). */
  private async inAgentMountNs(args: string[]): Promise<string> {
    try {
      const { stdout } = await run('nsenter', ['--target', String(this.child.pid), '--mount', '--', ...args]);
      return stdout;
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new NodevisorError(`${args.join(' ')} (in the sandbox's mount namespace) failed: ${stderr || (err as Error).message}`, {
        code: 'EMOUNT',
        cause: err,
      });
    }
  }

  /** The mount point of `destination` under `rootfs`, checked not to leave it through a symlink. */
  private async destinationIn(rootfs: string, destination: string): Promise<string> {
    const wanted = join(rootfs, normalize(`/${destination}`));
    const resolved = (await this.inAgentMountNs(['readlink', '-f', '--', wanted])).trim();
    if (resolved !== rootfs && !resolved.startsWith(`${rootfs}/`)) {
      throw new NodevisorError(`mount destination ${destination} leaves the container's rootfs (it resolves to ${resolved})`, {
        code: 'EINVAL',
      });
    }
    return resolved;
  }

  /** The sandbox's tmpfs for ephemeral storage named `name`, made once (Kata J2's ephemeral storage). */
  private ephemeralDir(name: string): Promise<string> {
    let made = this.#ephemeral.get(name);
    if (!made) {
      const dir = join(this.options.stateDir, 'ephemeral', name);
      made = mkdir(dir, { recursive: true })
        .then(() => this.inAgentMountNs(['mount', '-t', 'tmpfs', '-o', 'mode=1777,nodev,nosuid', 'tmpfs', dir]))
        .then(() => dir);
      made.catch(() => this.#ephemeral.delete(name));
      this.#ephemeral.set(name, made);
    }
    return made;
  }

  async addMounts(containerId: string, rootfs: string, mounts: readonly Mount[]): Promise<() => Promise<void>> {
    const log = logger('sandbox', { sandbox: this.options.sandboxId, container: containerId });
    const done: string[] = [];
    const undo = async () => {
      for (const target of done.reverse()) await this.inAgentMountNs(['umount', '--lazy', target]);
    };
    try {
      for (const m of mounts) {
        if (SKIPPED_DESTINATIONS.test(normalize(`/${m.destination}`))) continue;
        const options = m.options ?? [];
        const readOnly = options.includes('ro');
        let source: string;
        if (m.type === EPHEMERAL_TYPE) {
          source = await this.ephemeralDir(basename(m.source ?? m.destination));
        } else if (m.type === 'bind' || options.includes('bind') || options.includes('rbind')) {
          if (!m.source) throw new NodevisorError(`bind mount ${m.destination} has no source`, { code: 'EINVAL' });
          source = m.source;
        } else if (m.type === 'tmpfs') {
          const target = await this.destinationIn(rootfs, m.destination);
          const data = options.filter((o) => !['ro', 'rw'].includes(o));
          await this.inAgentMountNs(['mount', '-t', 'tmpfs', ...(data.length ? ['-o', data.join(',')] : []), 'tmpfs', target]);
          done.push(target);
          continue;
        } else {
          log.warn({ destination: m.destination, type: m.type }, 'mount type not supported in namespaces mode; skipped');
          continue;
        }
        const target = await this.destinationIn(rootfs, m.destination);
        await this.inAgentMountNs(['mount', '--rbind', source, target]);
        done.push(target);
        if (readOnly) await this.inAgentMountNs(['mount', '-o', 'remount,bind,ro', target]);
      }
    } catch (err) {
      await undo().catch((undoErr: unknown) => log.warn({ err: undoErr }, 'cannot undo the mounts'));
      throw err;
    }
    return undo;
  }

  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      // Closing the channel makes the agent kill its containers and exit; unshare follows.
      this.socket.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), AGENT_EXIT_MS);
      await this.exited;
      clearTimeout(timer);
    }
    this.agent.close();
    this.socket.destroy();
  }
}

