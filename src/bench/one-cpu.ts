/**
 * Confines this whole process to one CPU for a measurement: issue 12 asks for VM starts per
 * second "on one core", and in a normal run the JS thread, the libuv workers and the VMs' own
 * threads (vCPUs, device workers, the restore-prep thread, the reapers) spread over every CPU.
 * Each thread's CPU set is set with `taskset -p` (util-linux); threads made meanwhile inherit
 * their maker's. Afterwards every thread gets the process's set back. Blocking calls: run only
 * outside a timed span.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** The process could not be confined (or given its CPUs back); the measurement did not run or is void. */
export class ConfineError extends Error {
  override name = 'ConfineError';
}

/** This process's CPU set as /proc shows it ("0-1"), from the JS thread. */
function processCpus(): string {
  const list = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  if (!list) throw new ConfineError('cannot read Cpus_allowed_list from /proc/self/status');
  return list;
}

/**
 * Sets every thread's CPU set, one `taskset -p` each: `taskset -a` stops at the first thread
 * that ended while it walked them (a reaper or a VM's worker may end at any time).
 */
function setEveryThread(cpus: string): void {
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      execFileSync('taskset', ['-p', '-c', cpus, tid], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      if (!existsSync(`/proc/self/task/${tid}`)) continue; // it ended meanwhile
      throw new ConfineError(`taskset -p -c ${cpus} ${tid}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/**
 * Runs `fn` with every thread of this process on the first CPU it may use. A failure to
 * confine or to give the CPUs back is a ConfineError; `fn`'s own errors pass through.
 */
export async function onOneCpu<T>(fn: () => Promise<T>): Promise<{ cpu: number; value: T }> {
  const all = processCpus();
  const cpu = Number(/^\d+/.exec(all)?.[0]);
  try {
    setEveryThread(String(cpu));
    return { cpu, value: await fn() };
  } finally {
    setEveryThread(all);
  }
}
