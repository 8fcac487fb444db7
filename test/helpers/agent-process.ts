/**
 * The guest agent run on the host for tests: the static binary (or $NODEVISOR_AGENT) started by
 * `unshare` in a private mount namespace, serving on a socketpair (its fd 3), with an AgentClient
 * on the other end and every event it sent recorded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { Duplex } from 'node:stream';

import { AgentClient } from '../../src/agent/client.js';
import type { ExitEvent, ProcessRef, StdioEvent } from '../../src/agent/messages.js';
import { agentBinaryPath } from '../../src/guest/agent-binary.js';
import { allOf, need, needs, type Need } from './needs.js';

export const agentPath = agentBinaryPath({ mustExist: false });

/** Root, unshare and a built agent: what running the agent on the host needs. */
export const agentOnHost: Need = allOf(
  needs.root,
  needs.command('unshare'),
  need(existsSync(agentPath), `${agentPath} is not built (npm ci builds it; or npx node-gyp build)`),
);

export class AgentProcess {
  readonly child: ChildProcess;
  readonly client: AgentClient;
  readonly socket: Duplex;
  readonly stdio: StdioEvent[] = [];
  readonly exits: ExitEvent[] = [];
  readonly protocolErrors: { code: string; message: string }[] = [];
  /** Every event in arrival order, as "stdio:<container>:<stream>" or "exit:<container>". */
  readonly order: string[] = [];
  /** The agent's pid on the host when it is not child.pid (unshare --fork: its only child). */
  pidOverride: number | undefined;

  /**
   * `extraArgs` go to the agent. With `unshareArgs` the caller gives unshare's own options and
   * the agent's path; by default, unshare without --fork execs the agent in place (child.pid is
   * the agent's pid) in a private mount namespace.
   */
  constructor(extraArgs: string[] = [], unshareArgs: string[] = ['--mount', '--propagation', 'private', agentPath]) {
    this.child = spawn('unshare', [...unshareArgs, '--channel-fd', '3', ...extraArgs], {
      stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
    });
    this.socket = this.child.stdio[3] as Duplex;
    this.client = new AgentClient(this.socket, { timeoutMs: 20_000 });
    this.client.on('stdio', (e) => {
      this.stdio.push(e);
      this.order.push(`stdio:${e.containerId}:${e.stream}`);
    });
    this.client.on('exit', (e) => {
      this.exits.push(e);
      this.order.push(`exit:${e.containerId}`);
    });
    this.client.on('protocolError', (e) => this.protocolErrors.push({ code: e.code, message: e.message }));
  }

  get pid(): number {
    return this.pidOverride ?? this.child.pid!;
  }

  output(ref: ProcessRef, stream: 'stdout' | 'stderr' = 'stdout'): string {
    return Buffer.concat(
      this.stdio
        .filter((e) => e.containerId === ref.containerId && e.execId === ref.execId && e.stream === stream && e.data)
        .map((e) => e.data!),
    ).toString();
  }

  /** What the agent's fds point at. */
  fds(): string[] {
    return readdirSync(`/proc/${this.pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${this.pid}/fd/${fd}`);
      } catch {
        return '?';
      }
    });
  }

  /** The agent's mountinfo lines. */
  mountinfo(): string[] {
    return readFileSync(`/proc/${this.pid}/mountinfo`, 'utf8').trim().split('\n');
  }

  /** Mount points (field 5 of the agent's mountinfo). */
  mountPoints(): string[] {
    return this.mountinfo().map((l) => l.split(' ')[4]!);
  }

  /** The pids of the agent's children, space-separated. */
  children(): string {
    return readdirSync(`/proc/${this.pid}/task`)
      .map((t) => readFileSync(`/proc/${this.pid}/task/${t}/children`, 'utf8').trim())
      .join(' ')
      .trim();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.socket.end();
    await exited;
  }
}
