/**
 * The agent's `process` object (docs/protocol.md) for a container of an OCI spec: what
 * containerConfig() already read (args, env, user, capabilities), plus what the agent enforces
 * in the container that it does not model (rlimits, the seccomp profile). Absent fields stay
 * absent, so the agent applies its defaults (runc's capabilities, noNewPrivileges true).
 */
import type { ContainerConfig } from '../oci/container-config.js';
import type { AgentProcess, AgentRlimit, AgentSeccomp } from './messages.js';

export function agentProcess(config: ContainerConfig): AgentProcess {
  const { cmd, spec } = config;
  const process: AgentProcess = {
    args: cmd.args,
    env: cmd.envs.map((e) => `${e.name}=${e.value}`),
    cwd: cmd.workDir,
    uid: Number(cmd.user),
    gid: Number(cmd.primaryGroup),
    additionalGids: cmd.supplementaryGroups.map(Number),
  };
  // cmd.capabilities has all five sets even when the spec had none: look at the spec to tell.
  if (spec.process.capabilities !== undefined && spec.process.capabilities !== null) process.capabilities = cmd.capabilities;
  if (spec.process.noNewPrivileges !== undefined) process.noNewPrivileges = spec.process.noNewPrivileges;
  if (Array.isArray(spec.process.rlimits)) process.rlimits = spec.process.rlimits as AgentRlimit[];
  if (spec.linux.seccomp !== undefined && spec.linux.seccomp !== null) process.seccomp = spec.linux.seccomp as AgentSeccomp;
  return process;
}
