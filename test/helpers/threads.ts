/** Threads of this test process, by name (native/vmm/vstate names vCPU threads nv-vcpu<N>). */
import { readdirSync, readFileSync } from 'node:fs';

/** Names of this process's vCPU threads. */
export function vcpuThreads(): string[] {
  return readdirSync('/proc/self/task')
    .map((tid) => {
      try {
        return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      } catch {
        return '';
      }
    })
    .filter((name) => name.startsWith('nv-vcpu'));
}
