/**
 * A running sandbox: its isolation backend (a VM, or an agent in host namespaces), its network
 * namespace, and the containers in it, each with its stdio as streams.
 *
 * JS thread only. The agent's `stdio` and `exit` events are routed to the containers here.
 */
import { rm } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { PassThrough, Writable, type Readable } from 'node:stream';

import type { ExitStatus } from '../agent/messages.js';
import { agentProcess } from '../agent/process.js';
import { NodevisorError, errorCode, invalid } from '../errors.js';
import { postStartHooks, postStopHooks } from '../hooks/hooks.js';
import { logger } from '../log/logger.js';
import type { ContainerIdMapping } from '../mapping/container-id-mapping.js';
import { deleteNetNs } from '../netns/netns.js';
import type { ContainerConfig } from '../oci/container-config.js';
import type { ValidSpec } from '../oci/spec.js';
import type { SandboxBackend } from './backend.js';
import type { Isolation, SandboxProcess } from './types.js';
import { UndoStack, stepError } from './undo.js';

export type SandboxContainerStatus = 'created' | 'running' | 'stopped';

/** What `sandbox.containers` lists. */
export interface SandboxContainerInfo {
  id: string;
  /** Pid as the agent sees it. */
  pid: number;
  status: SandboxContainerStatus;
}

/** A container's standard streams: write to `stdin` (end() closes it), read the others. */
export interface ContainerStdio {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
}

interface ContainerRecord {
  id: string;
  spec: ValidSpec;
  bundlePath: string;
  pid: number;
  startTime: Date;
  started: boolean;
  exit?: ExitStatus;
  waiting?: Promise<ExitStatus>;
  stdio: ContainerStdio & { stdout: PassThrough; stderr: PassThrough };
  /** Removes the container from the agent (it is killed if it still runs). */
  destroy: () => Promise<void>;
  /** Unmounts, detaches, releases what the container used, newest first. */
  resources: UndoStack;
  mapped: boolean;
}

/** @internal What createSandbox hands the Sandbox it built. */
export interface SandboxParts {
  id: string;
  netNsPath: string;
  netNsCreated: boolean;
  backend: SandboxBackend;
  mapping: ContainerIdMapping;
  builtIn: boolean;
  stateDir: string;
  onDeleted(): void;
}

/** Rethrows `err` unless it says the agent channel is closed (the agent, or its VM, is gone). */
function unlessClosed(err: unknown): void {
  if (errorCode(err) !== 'ECLOSED') throw err;
}

function signalNumber(signal: number | NodeJS.Signals): number {
  if (typeof signal === 'number') {
    if (!Number.isInteger(signal) || signal < 1 || signal > 64) throw invalid(`signal must be 1 to 64, got ${signal}`);
    return signal;
  }
  const n = (osConstants.signals as Record<string, number | undefined>)[signal];
  if (n === undefined) throw invalid(`unknown signal ${JSON.stringify(signal)}`);
  return n;
}

export class Sandbox {
  readonly id: string;
  /** The sandbox's network namespace ('' when it runs in the host's). */
  readonly netNsPath: string;
  readonly isolation: Isolation;
  readonly #parts: SandboxParts;
  readonly #containers = new Map<string, ContainerRecord>();
  /** Ids whose creation is under way (two creations of one id must not race). */
  readonly #creating = new Set<string>();
  #stopped: Promise<Error[]> | undefined;
  #deleted: Promise<void> | undefined;

  /** @internal Use createSandbox. */
  constructor(parts: SandboxParts) {
    this.#parts = parts;
    this.id = parts.id;
    this.netNsPath = parts.netNsPath;
    this.isolation = parts.backend.isolation;
    const agent = parts.backend.agent;
    agent.on('stdio', (event) => {
      if (event.execId !== undefined) return;
      const rec = this.#containers.get(event.containerId);
      if (!rec) return;
      const stream = event.stream === 'stderr' ? rec.stdio.stderr : rec.stdio.stdout;
      // Ended by a teardown already: late output has nowhere to go (a write would throw).
      if (stream.writableEnded) return;
      if (event.data) stream.write(event.data);
      if (event.eof) stream.end();
    });
    agent.on('close', () => {
      // The agent (or its VM) is gone: no more output will come.
      for (const rec of this.#containers.values()) {
        rec.stdio.stdout.end();
        rec.stdio.stderr.end();
      }
    });
    agent.on('exit', (event) => {
      if (event.execId !== undefined) return;
      const rec = this.#containers.get(event.containerId);
      if (rec) rec.exit ??= { exitCode: event.exitCode, signal: event.signal };
    });
  }

  /** The containers in this sandbox, in creation order. */
  get containers(): SandboxContainerInfo[] {
    return [...this.#containers.values()].map((r) => ({
      id: r.id,
      pid: r.pid,
      status: r.exit ? 'stopped' : r.started ? 'running' : 'created',
    }));
  }

  #record(containerId: string): ContainerRecord {
    const rec = this.#containers.get(containerId);
    if (!rec) throw new NodevisorError(`no container ${JSON.stringify(containerId)} in sandbox ${this.id}`, { code: 'ENOENT' });
    return rec;
  }

  #log(containerId?: string) {
    return logger('sandbox', containerId ? { sandbox: this.id, container: containerId } : { sandbox: this.id });
  }

  /** The container's stdio streams (output is buffered until read). */
  stdio(containerId: string): ContainerStdio {
    return this.#record(containerId).stdio;
  }

  /** Starts the container's process, then runs the spec's poststart hooks in the sandbox's netns. */
  async startContainer(containerId: string): Promise<void> {
    const rec = this.#record(containerId);
    this.#checkLive();
    await this.#parts.backend.agent.startContainer(containerId);
    rec.started = true;
    await postStartHooks(rec.spec, containerId, rec.bundlePath, this.#hookOptions());
  }

  /** Resolves with the container's exit status once its first process has ended. */
  wait(containerId: string): Promise<ExitStatus> {
    const rec = this.#record(containerId);
    if (rec.exit) return Promise.resolve(rec.exit);
    rec.waiting ??= this.#parts.backend.agent.wait({ containerId }).then((status) => {
      rec.exit ??= status;
      return rec.exit;
    });
    return rec.waiting;
  }

  /** Sends a signal (number or name) to the container's first process. */
  async signal(containerId: string, signal: number | NodeJS.Signals): Promise<void> {
    this.#record(containerId);
    await this.#parts.backend.agent.signal({ containerId }, signalNumber(signal));
  }

  #hookOptions() {
    return this.netNsPath ? { netns: this.netNsPath } : {};
  }

  #checkLive(): void {
    if (this.#stopped) throw new NodevisorError(`sandbox ${this.id} is stopped`, { code: 'ESTATE' });
  }

  /**
   * @internal Creates `config`'s container in this sandbox: its rootfs reaches the agent (a
   * disk attached and mounted, or a host directory), the spec's extra mounts are made, and
   * the agent creates the process (not started). On failure everything done here is undone.
   */
  async addContainer(config: ContainerConfig, bundlePath: string): Promise<SandboxProcess> {
    this.#checkLive();
    const id = config.id;
    if (this.#containers.has(id) || this.#creating.has(id)) {
      throw new NodevisorError(`container ${id} already exists in sandbox ${this.id}`, { code: 'EEXIST' });
    }
    this.#creating.add(id);
    try {
      return await this.#createContainer(config, bundlePath);
    } finally {
      this.#creating.delete(id);
    }
  }

  async #createContainer(config: ContainerConfig, bundlePath: string): Promise<SandboxProcess> {
    const id = config.id;
    const { backend } = this.#parts;
    const agent = backend.agent;
    const resources = new UndoStack();
    let step = 'rootfs';
    try {
      const rootFs = config.rootFs;
      let rootfs: string;
      if (rootFs.mounted) {
        if (!rootFs.target) throw invalid('a host-mounted rootfs needs its target directory');
        rootfs = backend.hostRootfs(rootFs.target);
      } else {
        if (!rootFs.source) throw invalid('rootFs needs a source (block device or image file) when it is not mounted');
        if (!rootFs.type) throw invalid(`rootFs.type (the filesystem type of ${rootFs.source}) is needed to mount it`);
        const options = [...(rootFs.options ?? [])];
        if (config.readonlyRootfs && !options.includes('ro')) options.push('ro');
        const readOnly = options.includes('ro');
        step = 'attach the rootfs disk';
        const disk = await backend.attachDisk(id, rootFs.source, readOnly);
        resources.push('release the rootfs disk', () => disk.release());
        step = 'mount the rootfs in the agent';
        const mountPoint = backend.rootfsMountPoint(id);
        await agent.mountStorage({ ...disk.locator, fstype: rootFs.type, options, mountPoint });
        // An agent that is gone has taken its mounts with it (its mount namespace or its VM).
        resources.push('unmount the rootfs', () => agent.unmountStorage(mountPoint).catch(unlessClosed));
        if (disk.mounted) await disk.mounted();
        rootfs = mountPoint;
      }
      step = 'container mounts';
      if (backend.addMounts) {
        const undoMounts = await backend.addMounts(id, rootfs, config.mounts);
        resources.push('undo the container mounts', undoMounts);
      } else if (config.mounts.some((m) => !/^\/(proc|dev|sys)(\/|$)/.test(m.destination))) {
        this.#log(id).warn('the spec mounts are not supported by this isolation backend; skipped');
      }
      if (config.cmd.console || config.cmd.interactive) {
        this.#log(id).warn('the agent has no terminal (pty) support: the container gets pipes for its stdio');
      }
      step = 'create the container in the agent';
      const hostname = config.spec.hostname;
      const { pid } = await agent.createContainer({
        containerId: id,
        rootfs,
        ...(hostname ? { hostname } : {}),
        process: agentProcess(config),
      });
      // Gone already (destroyed, or the agent ended): nothing to destroy.
      const destroy = () => agent.destroyContainer(id).catch((err: unknown) => (errorCode(err) === 'ENOENT' ? undefined : unlessClosed(err)));
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      const stdin = new Writable({
        write: (chunk: Buffer, _enc, cb) => void agent.writeStdin({ containerId: id }, chunk).then(() => cb(), cb),
        final: (cb) => void agent.writeStdin({ containerId: id }, undefined, true).then(() => cb(), cb),
      });
      stdin.on('error', (err) => this.#log(id).debug({ err }, 'stdin write failed'));
      const startTime = new Date();
      this.#containers.set(id, {
        id,
        spec: config.spec,
        bundlePath,
        pid,
        startTime,
        started: false,
        stdio: { stdin, stdout, stderr },
        destroy,
        resources,
        mapped: false,
      });
      return { containerId: id, pid, startTime };
    } catch (err) {
      const rollback = await resources.unwind({ sandbox: this.id, container: id });
      throw stepError(`container ${id}`, step, err, rollback);
    }
  }

  /** @internal Where this sandbox's container-id mappings are written. */
  get mapping(): ContainerIdMapping {
    return this.#parts.mapping;
  }

  /** @internal Records that the container's id mapping was written (delete removes it). */
  markMapped(containerId: string): void {
    this.#record(containerId).mapped = true;
  }

  /** @internal Takes a container out again (a later step of its creation failed). */
  async removeContainer(containerId: string): Promise<void> {
    const rec = this.#containers.get(containerId);
    if (!rec) return;
    this.#containers.delete(containerId);
    await this.#teardown(rec, false);
  }

  async #teardown(rec: ContainerRecord, poststop: boolean): Promise<Error[]> {
    const errors: Error[] = [];
    const note = (err: unknown) => errors.push(err instanceof Error ? err : new Error(String(err)));
    await rec.destroy().catch(note);
    rec.stdio.stdout.end();
    rec.stdio.stderr.end();
    rec.exit ??= { exitCode: null, signal: 9 };
    if (poststop) {
      // Kata: a poststop failure fails the delete (and the container's id mapping is kept).
      await postStopHooks(rec.spec, rec.id, rec.bundlePath, this.#hookOptions()).catch((err: unknown) => {
        rec.mapped = false;
        note(err);
      });
    }
    errors.push(...(await rec.resources.unwind({ sandbox: this.id, container: rec.id })));
    return errors;
  }

  /**
   * Stops the sandbox: each container is destroyed (killed if it still runs), its poststop hooks
   * run in the sandbox's netns, its rootfs is unmounted and its disk detached; then the VM (or
   * the agent) stops. Idempotent. Rejects with the first failure after doing all of it.
   */
  async stop(): Promise<void> {
    this.#stopped ??= (async () => {
      const errors: Error[] = [];
      for (const rec of [...this.#containers.values()].reverse()) {
        errors.push(...(await this.#teardown(rec, true)));
      }
      await this.#parts.backend.stop().catch((err: unknown) => errors.push(err as Error));
      return errors;
    })();
    const errors = await this.#stopped;
    if (errors.length) throw stepError(`stop sandbox ${this.id}`, 'teardown', errors[0], errors.slice(1));
  }

  /**
   * Stops the sandbox if needed, then deletes what it created on the host: its network
   * namespace (if it made it), its container-id mappings, its state directory. Idempotent.
   */
  delete(): Promise<void> {
    this.#deleted ??= (async () => {
      const errors: unknown[] = [];
      await this.stop().catch((err: unknown) => errors.push(err));
      const { mapping, netNsCreated, stateDir } = this.#parts;
      if (netNsCreated && this.netNsPath) await deleteNetNs(this.netNsPath).catch((err: unknown) => errors.push(err));
      for (const rec of this.#containers.values()) {
        if (rec.mapped) await mapping.delete(rec.id).catch((err: unknown) => errors.push(err));
      }
      await rm(stateDir, { recursive: true, force: true }).catch((err: unknown) => errors.push(err));
      this.#parts.onDeleted();
      if (errors.length) throw stepError(`delete sandbox ${this.id}`, 'cleanup', errors[0]);
    })();
    return this.#deleted;
  }
}
