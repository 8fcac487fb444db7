/**
 * Confines this whole process to one CPU for a measurement: issue 12 asks for VM starts per
 * second "on one core", and in a normal run the JS thread, the libuv workers and the VMs' own
 * threads (vCPUs, device workers, the restore-prep thread, the reapers) spread over every CPU.
 * `taskset -a` (util-linux) sets each existing thread's CPU set; threads made meanwhile inherit
 * their maker's. Afterwards every thread gets the process's set back. Blocking calls: run only
 * outside a timed span.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** This process's CPU set as /proc shows it ("0-1"), from the JS thread. */
function processCpus(): string {
  const list = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  if (!list) throw new Error('cannot read Cpus_allowed_list from /proc/self/status');
  return list;
}

function setEveryThread(cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Runs `fn` with every thread of this process on the first CPU it may use. */
export async function onOneCpu<T>(fn: () => Promise<T>): Promise<{ cpu: number; value: T }> {
  const all = processCpus();
  const cpu = Number(/^\d+/.exec(all)?.[0]);
  setEveryThread(String(cpu));
  try {
    return { cpu, value: await fn() };
  } finally {
    setEveryThread(all);
  }
}
