/**
 * Runs iproute2's `ip` and `tc` inside a network namespace (by path, as CNI and Kata name
 * them). The child is spawned with the JS thread inside the namespace (src/netns enterNetNs)
 * and awaited outside, so the event loop never waits on it. Netlink stays in iproute2: no
 * hand-built messages here.
 */
import { spawn } from 'node:child_process';

import { NodevisorError } from '../errors.js';
import { enterNetNs } from '../netns/enter.js';

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/**
 * `ip`/`tc` with `args` inside `netns` (empty: where we are). Rejects with ENETCONFIG naming the
 * command and iproute2's message when it exits non-zero, ENOENT when it is not installed.
 */
export async function iproute(netns: string, command: 'ip' | 'tc', args: string[]): Promise<CommandResult> {
  const child = enterNetNs(netns, () => spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const line = `${command} ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        new NodevisorError(`cannot run ${line}: ${err.message} (Debian: apt-get install iproute2)`, {
          code: err.code ?? 'ENOENT',
          cause: err,
        }),
      ),
    );
    child.on('close', (code, signal) => {
      if (code === 0) return resolve({ stdout, stderr });
      const why = stderr.trim() || (signal ? `killed by ${signal}` : `exit code ${String(code)}`);
      reject(new NodevisorError(`${line} failed in ${netns || 'the current netns'}: ${why}`, { code: 'ENETCONFIG', path: netns || undefined }));
    });
  });
}

/** `ip -json <args>` parsed. */
export async function ipJson<T>(netns: string, args: string[]): Promise<T> {
  const { stdout } = await iproute(netns, 'ip', ['-json', ...args]);
  const text = stdout.trim();
  return (text === '' ? [] : JSON.parse(text)) as T;
}
