/**
 * The guest agent run on the host for tests: the static binary (or $NODEVISOR_AGENT) started by
 * `unshare` in a private mount namespace, serving on a socketpair (its fd 3), with an AgentClient
 * on the other end and every event it sent recorded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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
  need(existsSync(agentPath), `${agentPath} is not built (npx node-gyp build)`),
);

export class AgentProcess {
  readonly child: ChildProcess;
  readonly client: AgentClient;
  readonly socket: Duplex;
  readonly stdio: StdioEvent[] = [];
  readonly exits: ExitEvent[] = [];
  readonly protocolErrors: { code: string; message: string }[] = [];

  /** `unshare --mount --propagation private <agent> --channel-fd 3 ...extraArgs` (child.pid is the agent). */
  constructor(extraArgs: string[] = []) {
    this.child = spawn('unshare', ['--mount', '--propagation', 'private', agentPath, '--channel-fd', '3', ...extraArgs], {
      stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
    });
    this.socket = this.child.stdio[3] as Duplex;
    this.client = new AgentClient(this.socket, { timeoutMs: 20_000 });
    this.client.on('stdio', (e) => this.stdio.push(e));
    this.client.on('exit', (e) => this.exits.push(e));
    this.client.on('protocolError', (e) => this.protocolErrors.push({ code: e.code, message: e.message }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  output(ref: ProcessRef, stream: 'stdout' | 'stderr' = 'stdout'): string {
    return Buffer.concat(
      this.stdio
        .filter((e) => e.containerId === ref.containerId && e.execId === ref.execId && e.stream === stream && e.data)
        .map((e) => e.data!),
    ).toString();
  }

  /** Mount points (field 5 of the agent's mountinfo). */
  mountPoints(): string[] {
    return readFileSync(`/proc/${this.pid}/mountinfo`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[4]!);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.socket.end();
    await exited;
  }
}
