#!/usr/bin/env node
/**
 * The per-sandbox daemon of `nodevisor-runtime`: each runtime command is a short process, so a
 * sandbox (its VM or namespaces agent, its netns, hooks and id mapping) is held by this process,
 * which `create` starts detached for a sandbox and which ends when the sandbox is deleted.
 * Commands reach it on a unix socket (protocol.ts); the relays (relay.ts) attach to stream a
 * process's stdio and learn its exit status.
 *
 * Started as `node daemon.js <json>` with fd 3 a pipe: it writes "ready\n" there once it
 * listens, and closes it. JS thread only; every wait is on the agent or the socket.
 */
import { rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { createWriteStream } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';

import type { AgentClient } from '../agent/client.js';
import type { ExitStatus, AgentProcess } from '../agent/messages.js';
import { agentProcess } from '../agent/process.js';
import { NodevisorError, errorCode } from '../errors.js';
import { ContainerIdMapping } from '../mapping/container-id-mapping.js';
import { containerType } from '../oci/annotations.js';
import { containerConfig } from '../oci/container-config.js';
import { validateId } from '../oci/ids.js';
import { parseConfigJson } from '../oci/parse.js';
import type { Spec } from '../oci/spec.js';
import { createContainer, createSandbox, setBackendStarter } from '../sandbox/create.js';
import { startNamespacesBackend } from '../sandbox/namespaces-backend.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import { startVmBackend } from '../sandbox/vm-backend.js';
import type { Isolation } from '../sandbox/types.js';
import type { RuntimeConfig } from '../config/types.js';
import { onMessages, send, type Message } from './protocol.js';

export interface DaemonOptions {
  sandboxId: string;
  socket: string;
  isolation: Isolation;
  runtimeConfig: RuntimeConfig;
  agentPath: string;
  stateRoot: string;
  mappingRoot: string;
  systemdCgroup: boolean;
}

/** How long the output may trail the exit status (the agent sends it first; a bound). */
const OUTPUT_DRAIN_MS = 2000;

/** A process a relay can attach to: a container's first process or an exec. */
interface Proc {
  containerId: string;
  execId?: string;
  stdout: Readable;
  stderr: Readable;
  writeStdin(data: Buffer | undefined, eof: boolean): Promise<void>;
  signal(signal: number): Promise<void>;
  wait(): Promise<ExitStatus>;
  exit?: ExitStatus;
  /** The relay's host pid (what `ps` lists and the pid file holds). */
  relayPid?: number;
}

function ended(stream: Readable): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, OUTPUT_DRAIN_MS);
    stream.once('end', () => {
      clearTimeout(timer);
      resolve();
    });
    stream.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function errorReply(err: unknown): Message {
  return { ok: false, error: err instanceof Error ? err.message : String(err), code: errorCode(err) ?? 'EFAIL' };
}

class Daemon {
  sandbox: Sandbox | undefined;
  agent: AgentClient | undefined;
  /** Containers by id, with their bundles (a pod container's own, the sandbox's). */
  readonly bundles = new Map<string, { bundle: string; spec: Spec }>();
  /** Processes by `containerId` or `containerId/execId`. */
  readonly procs = new Map<string, Proc>();
  readonly execOutput = new Map<string, { stdout: PassThrough; stderr: PassThrough }>();
  closing = false;

  constructor(
    readonly options: DaemonOptions,
    readonly shutdown: () => void,
  ) {}

  /** Takes the sandbox's agent: its exec output goes to the exec's streams (the Sandbox routes only its containers'). */
  adoptAgent(agent: AgentClient): void {
    this.agent = agent;
    agent.on('stdio', (event) => {
      if (event.execId === undefined) return;
      const out = this.execOutput.get(this.key(event.containerId, event.execId));
      if (!out) return;
      const stream = event.stream === 'stderr' ? out.stderr : out.stdout;
      if (event.data) stream.write(event.data);
      if (event.eof) stream.end();
    });
    agent.on('close', () => {
      for (const out of this.execOutput.values()) {
        out.stdout.end();
        out.stderr.end();
      }
    });
  }

  key(containerId: string, execId?: string): string {
    return execId ? `${containerId}/${execId}` : containerId;
  }

  proc(containerId: string, execId?: string): Proc {
    const p = this.procs.get(this.key(containerId, execId));
    if (!p) throw new NodevisorError(`no ${execId ? `exec ${execId} in ` : ''}container ${containerId} in sandbox ${this.options.sandboxId}`, { code: 'ENOENT' });
    return p;
  }

  live(): Sandbox {
    if (!this.sandbox) throw new NodevisorError(`sandbox ${this.options.sandboxId} has no sandbox yet`, { code: 'ESTATE' });
    return this.sandbox;
  }

  status(containerId: string): 'created' | 'running' | 'stopped' {
    const info = this.sandbox?.containers.find((c) => c.id === containerId);
    if (!info) throw new NodevisorError(`container ${containerId} does not exist in sandbox ${this.options.sandboxId}`, { code: 'ENOENT' });
    return info.status;
  }

  addInit(sandbox: Sandbox, containerId: string): void {
    const stdio = sandbox.stdio(containerId);
    const proc: Proc = {
      containerId,
      stdout: stdio.stdout,
      stderr: stdio.stderr,
      writeStdin: (data, eof) =>
        new Promise<void>((resolve, reject) => {
          if (eof) stdio.stdin.end(resolve);
          else if (data) stdio.stdin.write(data, (err) => (err ? reject(err) : resolve()));
          else resolve();
        }),
      signal: (n) => sandbox.signal(containerId, n),
      wait: () => sandbox.wait(containerId),
    };
    this.procs.set(this.key(containerId), proc);
  }

  async create(m: Message): Promise<Message> {
    const id = validateId(m.id, 'container id');
    const bundle = String(m.bundle);
    const spec = await parseConfigJson(bundle);
    // A terminal is the relay's pty (console.ts); the agent gives the process pipes.
    if (spec.process?.terminal) spec.process.terminal = false;
    const mapping = new ContainerIdMapping(this.options.mappingRoot);
    if (!this.sandbox) {
      if (containerType(spec) !== 'pod_sandbox') throw new NodevisorError(`${id} is not a sandbox, and sandbox ${this.options.sandboxId} does not exist yet`, { code: 'EINVAL' });
      const { sandbox, process } = await createSandbox({
        spec,
        runtimeConfig: this.options.runtimeConfig,
        rootFs: { mounted: true },
        containerId: id,
        bundlePath: bundle,
        isolation: this.options.isolation,
        systemdCgroup: this.options.systemdCgroup,
        stateRoot: this.options.stateRoot,
        mapping,
        ...(this.options.agentPath ? { agentPath: this.options.agentPath } : {}),
      });
      this.sandbox = sandbox;
      this.bundles.set(id, { bundle, spec });
      this.addInit(sandbox, id);
      return { ok: true, pid: process.pid };
    }
    const process = await createContainer({ spec, rootFs: { mounted: true }, containerId: id, bundlePath: bundle, sandbox: this.sandbox });
    this.bundles.set(id, { bundle, spec });
    this.addInit(this.sandbox, id);
    return { ok: true, pid: process.pid };
  }

  /** The agent's process for an exec of `containerId`: the container's spec with the exec's OCI process. */
  execProcess(containerId: string, ociProcess: unknown): AgentProcess {
    const rec = this.bundles.get(containerId);
    if (!rec) throw new NodevisorError(`container ${containerId} does not exist in sandbox ${this.options.sandboxId}`, { code: 'ENOENT' });
    if (typeof ociProcess !== 'object' || ociProcess === null) throw new NodevisorError('the exec process must be an OCI process object', { code: 'EINVAL' });
    // A terminal is the relay's pty (console.ts); the agent gives the process pipes.
    const spec = { ...rec.spec, process: { ...ociProcess, terminal: false } } as Spec;
    return agentProcess(containerConfig(spec, { bundlePath: rec.bundle, containerId, console: '', detach: false }));
  }

  async exec(containerId: string, execId: string, ociProcess: unknown): Promise<Proc> {
    validateId(execId, 'exec id');
    const agent = this.agent;
    if (!agent) throw new NodevisorError('the sandbox has no agent', { code: 'ESTATE' });
    if (this.status(containerId) !== 'running') throw new NodevisorError(`cannot exec in container ${containerId}: container not running`, { code: 'ESTATE' });
    const key = this.key(containerId, execId);
    if (this.procs.has(key)) throw new NodevisorError(`exec ${execId} exists in container ${containerId}`, { code: 'EEXIST' });
    const process = this.execProcess(containerId, ociProcess);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    this.execOutput.set(key, { stdout, stderr });
    try {
      await agent.exec(containerId, execId, process);
    } catch (err) {
      this.execOutput.delete(key);
      throw err;
    }
    let waiting: Promise<ExitStatus> | undefined;
    const proc: Proc = {
      containerId,
      execId,
      stdout,
      stderr,
      writeStdin: (data, eof) => agent.writeStdin({ containerId, execId }, data, eof),
      signal: (n) => agent.signal({ containerId, execId }, n),
      wait: () => (waiting ??= agent.wait({ containerId, execId }).then((s) => (proc.exit = s))),
    };
    this.procs.set(key, proc);
    return proc;
  }

  /** A relay's connection: attach to a process (exec'ing it first when asked), stream until it exits. */
  async attach(socket: Socket, m: Message): Promise<void> {
    const containerId = String(m.id);
    const execId = typeof m.execId === 'string' ? m.execId : undefined;
    const proc = execId ? await this.exec(containerId, execId, m.process) : this.proc(containerId);
    if (proc.relayPid !== undefined) throw new NodevisorError(`a relay is attached to ${this.key(containerId, execId)} already`, { code: 'EBUSY' });
    proc.relayPid = Number(m.relayPid) || 0;
    send(socket, { ok: true });
    let exited = false;
    const forward = (stream: Readable, name: 'stdout' | 'stderr') => {
      stream.on('data', (chunk: Buffer) => send(socket, { [name]: chunk.toString('base64') }));
    };
    forward(proc.stdout, 'stdout');
    forward(proc.stderr, 'stderr');
    onMessages(
      socket,
      (msg) => {
        if (typeof msg.stdin === 'string') void proc.writeStdin(Buffer.from(msg.stdin, 'base64'), false).catch(() => undefined);
        else if (msg.stdinEof === true) void proc.writeStdin(undefined, true).catch(() => undefined);
        else if (typeof msg.signal === 'number') void proc.signal(msg.signal).catch(() => undefined);
      },
      () => undefined,
    );
    socket.on('close', () => {
      // The relay is the process the shim watches: without it the process must not live on.
      if (!exited && !proc.exit) void proc.signal(osConstants.signals.SIGKILL).catch(() => undefined);
    });
    socket.on('error', () => undefined);
    const status = await proc.wait();
    proc.exit = status;
    await Promise.all([ended(proc.stdout), ended(proc.stderr)]);
    exited = true;
    send(socket, { exit: status });
    socket.end();
    if (execId) {
      // An exec is done once its relay has the status (the agent freed its record at the wait):
      // forget it, so a daemon that serves exec probes for days does not grow.
      this.procs.delete(this.key(containerId, execId));
      this.execOutput.delete(this.key(containerId, execId));
    }
  }

  async handle(socket: Socket, m: Message): Promise<void> {
    const op = m.op;
    if (op === 'attach') return this.attach(socket, m);
    let reply: Message;
    const id = String(m.id ?? '');
    switch (op) {
      case 'create':
        reply = await this.create(m);
        break;
      case 'start': {
        const sandbox = this.live();
        if (this.status(id) !== 'created') throw new NodevisorError(`cannot start container ${id}: it is ${this.status(id)}, not created`, { code: 'ESTATE' });
        try {
          await sandbox.startContainer(id);
        } catch (err) {
          // The process never ran: no output will come, so its relay gets the exit status now.
          const stdio = sandbox.stdio(id);
          if (this.status(id) === 'stopped') {
            for (const stream of [stdio.stdout, stdio.stderr]) if (stream instanceof PassThrough) stream.end();
          }
          throw err;
        }
        reply = { ok: true };
        break;
      }
      case 'status': {
        const info = this.sandbox?.containers.find((c) => c.id === id);
        if (!info) throw new NodevisorError(`container ${id} does not exist in sandbox ${this.options.sandboxId}`, { code: 'ENOENT' });
        reply = { ok: true, status: info.status, agentPid: info.pid };
        break;
      }
      case 'signal': {
        const status = this.status(id);
        if (status === 'stopped') throw new NodevisorError(`container ${id}: container not running`, { code: 'ESRCH' });
        const signal = Number(m.signal);
        await this.live().signal(id, signal);
        if (m.all === true) {
          for (const p of this.procs.values()) {
            if (p.containerId === id && p.execId && !p.exit) await p.signal(signal).catch(() => undefined);
          }
        }
        reply = { ok: true };
        break;
      }
      case 'ps': {
        const pids = [...this.procs.values()].filter((p) => p.containerId === id && !p.exit && p.relayPid).map((p) => p.relayPid!);
        this.status(id);
        reply = { ok: true, pids };
        break;
      }
      case 'delete':
        reply = await this.delete(id, m.force === true);
        break;
      case 'shutdown':
        await this.sandbox?.delete().catch(() => undefined);
        this.closing = true;
        reply = { ok: true };
        break;
      default:
        throw new NodevisorError(`unknown request ${JSON.stringify(op)}`, { code: 'EINVAL' });
    }
    send(socket, reply);
    socket.end();
    if (this.closing) this.shutdown();
  }

  async delete(id: string, force: boolean): Promise<Message> {
    const sandbox = this.live();
    const status = this.status(id);
    if (status === 'running' && !force) throw new NodevisorError(`cannot delete container ${id} that is not stopped: ${status}`, { code: 'ESTATE' });
    if (id === sandbox.id) {
      // The sandbox goes with its first container (its pod containers too), as Kata's delete.
      await sandbox.delete();
      this.closing = true;
    } else {
      // The sandbox API has no per-container delete yet: removeContainer destroys the container
      // and releases its mounts (no poststop hooks), and its id mapping is ours to remove.
      await sandbox.removeContainer(id);
      await new ContainerIdMapping(this.options.mappingRoot).delete(id);
      for (const key of [...this.procs.keys()]) if (key === id || key.startsWith(`${id}/`)) this.procs.delete(key);
      this.bundles.delete(id);
    }
    return { ok: true };
  }
}

export async function runDaemon(options: DaemonOptions, ready: () => void): Promise<void> {
  await rm(options.socket, { force: true });
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const server = createServer();
  const daemon = new Daemon(options, () => {
    server.close();
    finish();
  });
  // Keep the sandbox's agent: exec needs it, and the Sandbox keeps it to itself.
  const capture = (start: typeof startVmBackend) => async (o: Parameters<typeof startVmBackend>[0]) => {
    const backend = await start(o);
    daemon.adoptAgent(backend.agent);
    return backend;
  };
  setBackendStarter('vm', capture(startVmBackend));
  setBackendStarter('namespaces', capture(startNamespacesBackend));

  server.on('connection', (socket) => {
    socket.on('error', () => undefined);
    let first = true;
    onMessages(
      socket,
      (m) => {
        // The first message is the request; an attach connection's later ones are its input.
        if (!first) return;
        first = false;
        daemon.handle(socket, m).catch((err: unknown) => {
          send(socket, errorReply(err));
          socket.end();
        });
      },
      () => undefined,
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path: options.socket }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  ready();
  // SIGTERM (delete --force of a daemon that does not answer, host shutdown): tear the sandbox down.
  const onTerm = () => {
    if (!daemon.sandbox) daemon.shutdown();
    else void daemon.sandbox.delete().catch(() => undefined).finally(() => daemon.shutdown());
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onTerm);
  await finished;
  await rm(options.socket, { force: true });
  process.off('SIGTERM', onTerm);
  process.off('SIGINT', onTerm);
}

/** `node daemon.js <options as JSON>`; stdout and stderr are the daemon's log file. */
async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '') as DaemonOptions;
  await runDaemon(options, () => {
    createWriteStream('', { fd: 3 }).end('ready\n');
  });
  process.exit(0);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`nodevisor-runtime daemon: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
