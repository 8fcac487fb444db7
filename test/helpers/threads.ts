/** Threads of this test process, by name (native/vmm/vstate names vCPU threads nv-vcpu<N>). */
import { readdirSync, readFileSync } from 'node:fs';

/** Names of this process's vCPU threads. */
export function vcpuThreads(): string[] {
  return threadCpus('nv-vcpu').map((thread) => thread.name);
}

/** One thread of this process: its name, the CPUs it may run on, and the CPU it last ran on. */
export interface ThreadCpus {
  tid: number;
  name: string;
  /** Cpus_allowed_list, as /proc shows it ("0-1", "1"). */
  allowed: string;
  lastCpu: number;
}

/** This process's threads whose name starts with `prefix` (all of them for ''), with their CPUs. */
export function threadCpus(prefix: string): ThreadCpus[] {
  const found: ThreadCpus[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    const cpus = readThreadCpus(Number(tid));
    if (cpus?.name.startsWith(prefix)) found.push(cpus);
  }
  return found;
}

/** The calling (JS) thread's CPUs. */
export function jsThreadCpus(): ThreadCpus {
  const cpus = readThreadCpus(process.pid);
  if (!cpus) throw new Error('cannot read /proc/self/task for the JS thread');
  return cpus;
}

function readThreadCpus(tid: number): ThreadCpus | undefined {
  try {
    const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const name = /^Name:\s*(.*)$/m.exec(status)?.[1] ?? '';
    const allowed = /^Cpus_allowed_list:\s*(.*)$/m.exec(status)?.[1] ?? '';
    // Field 39 ("processor"); the fields after the ")" that ends the name start at 3.
    const lastCpu = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[39 - 3]);
    return { tid, name, allowed, lastCpu };
  } catch {
    return undefined; // the thread ended while we looked
  }
}
