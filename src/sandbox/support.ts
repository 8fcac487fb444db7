/**
 * Which isolation backends this machine can run, and why not (for `nodevisor info` and for
 * callers choosing a backend). Checks files and PATH only (fs.access on libuv's pool); nothing
 * is started.
 */
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

import { agentBinaryCandidates } from '../guest/agent-binary.js';
import type { Isolation } from './types.js';

export interface IsolationSupport {
  isolation: Isolation;
  ok: boolean;
  /** What is missing when not ok; a caveat when ok (may be empty). */
  detail: string;
}

async function usable(path: string, mode: number): Promise<boolean> {
  try {
    await access(path, mode);
    return true;
  } catch {
    return false;
  }
}

async function onPath(command: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && (await usable(join(dir, command), constants.X_OK))) return true;
  }
  return false;
}

export async function isolationSupport(): Promise<IsolationSupport[]> {
  const kvm = await usable('/dev/kvm', constants.R_OK | constants.W_OK);
  const pvm = await usable('/sys/module/kvm_pvm', constants.F_OK);
  const vm: IsolationSupport = {
    isolation: 'vm',
    ok: kvm,
    detail: !kvm
      ? '/dev/kvm is missing or not read-writable'
      : pvm
        ? 'KVM is kvm_pvm here: the probe guest runs, a Linux guest (and so a container) cannot reach user space'
        : '',
  };

  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (namespaces, mounts, loop devices)');
  for (const command of ['unshare', 'nsenter', 'losetup']) {
    if (!(await onPath(command))) missing.push(`the ${command} command (apt-get install util-linux mount)`);
  }
  let agent = false;
  for (const path of agentBinaryCandidates()) if (await usable(path, constants.X_OK)) agent = true;
  if (!agent) missing.push('the agent binary (npx node-gyp build, or NODEVISOR_AGENT)');
  const namespaces: IsolationSupport = {
    isolation: 'namespaces',
    ok: missing.length === 0,
    detail: missing.length ? `needs ${missing.join(', ')}` : 'isolates like runc (the host kernel is shared), not like a VM',
  };
  return [vm, namespaces];
}
