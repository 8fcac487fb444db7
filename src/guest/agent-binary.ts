/**
 * Where the guest agent binary is: built by `npm ci` through binding.gyp (target
 * `nodevisor-agent`, a static Linux executable) next to the addon. NODEVISOR_AGENT overrides.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { NodevisorError } from '../errors.js';
import { packageRoot } from '../native/binding.js';

export function agentBinaryCandidates(): string[] {
  const root = packageRoot();
  const list = [join(root, 'build', 'Release', 'nodevisor-agent'), join(root, 'build', 'Debug', 'nodevisor-agent')];
  const fromEnv = process.env.NODEVISOR_AGENT;
  return fromEnv ? [resolve(fromEnv), ...list] : list;
}

/**
 * The agent binary's path. With `mustExist` (the default) a missing binary is an ENOENT error
 * naming the paths tried; otherwise the first candidate is returned as it is.
 */
export function agentBinaryPath(options: { mustExist?: boolean } = {}): string {
  const candidates = agentBinaryCandidates();
  const found = candidates.find((p) => existsSync(p));
  if (found) return found;
  if (options.mustExist === false) return candidates[0]!;
  throw new NodevisorError(
    `the guest agent binary is missing. Tried:\n  ${candidates.join('\n  ')}\n` +
      'Build it with `npx node-gyp rebuild` (target nodevisor-agent; needs g++ and static glibc, libc6-dev), ' +
      'or set NODEVISOR_AGENT=<path>.',
    { code: 'ENOENT' },
  );
}
