/** The benchmarks `npm run bench` knows; each says what it needs and how to print its figures. */
import { access, constants } from 'node:fs/promises';

import { netBench } from './net.js';

export interface BenchContext {
  /** Fewer iterations, for a smoke run. */
  quick: boolean;
}

export interface Bench<R = unknown> {
  name: string;
  title: string;
  /** Why it cannot run here, or undefined when it can. */
  missing(): Promise<string | undefined>;
  run(ctx: BenchContext): Promise<R>;
  format(result: R): string;
}

export async function needRoot(): Promise<string | undefined> {
  return process.getuid?.() === 0 ? undefined : 'needs root';
}

export async function needKvm(): Promise<string | undefined> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    return undefined;
  } catch {
    return '/dev/kvm is missing or not accessible';
  }
}

const netns: Bench<import('./netns.js').NetnsBenchResult> = {
  name: 'netns',
  title: 'network namespace create+delete, and one enterNetNs',
  missing: needRoot,
  async run(ctx) {
    const { benchNetns } = await import('./netns.js');
    return benchNetns(ctx.quick ? { cycles: 20, enters: 500 } : {});
  },
  format(r) {
    return [
      `   create+delete: ${r.createDelete.perSecond} per second (${r.createDelete.cycles} cycles in ${r.createDelete.totalMs} ms)`,
      `   enterNetNs:    median ${r.enterNetNs.medianUs} µs, p99 ${r.enterNetNs.p99Us} µs (n=${r.enterNetNs.iterations})`,
    ].join('\n');
  },
};

const virtio: Bench<import('./virtio.js').VirtioBenchResult> = {
  name: 'virtio',
  title: 'hot-plug → guest reads the disk, agent ping round trip, echo throughput (probe guest)',
  missing: needKvm,
  async run(ctx) {
    const { benchVirtio } = await import('./virtio.js');
    return benchVirtio(ctx.quick ? { attaches: 5, pings: 20, echoBytes: 512 * 1024 } : {});
  },
  format(r) {
    const f = (s: { median: number; p99: number; n: number }) => `p50 ${s.median} µs, p99 ${s.p99} µs (n=${s.n})`;
    return [
      `   attachDisk → guest reads it: ${f(r.attachToGuestReadUs)} (the host call alone: ${f(r.attachCallUs)})`,
      `   agent ping round trip:       ${f(r.pingRoundTripUs)}`,
      `   echo through vm.agent:       ${r.echo.mibPerSecond} MiB/s (${r.echo.bytes} bytes in ${r.echo.seconds} s)`,
    ].join('\n');
  },
};

const vmStart: Bench<import('./vm-start.js').VmStartBenchResult> = {
  name: 'vm-start',
  title: 'create + start -> guest ready (phase 0x41) on the probe ELF: nodevisor in-process vs QEMU microvm',
  // QEMU is the peer, not a need: without it nodevisor is still measured and the peer is
  // reported as skipped (benchVmStart says why).
  missing: needKvm,
  async run(ctx) {
    const { benchVmStart } = await import('./vm-start.js');
    return benchVmStart(ctx.quick ? { iterations: 20, qemuIterations: 3 } : { iterations: 200, qemuIterations: 20 });
  },
  format(r) {
    const f = (s: { p50Us: number; p99Us: number; summaryUs: { n: number } }) =>
      `p50 ${s.p50Us} µs, p99 ${s.p99Us} µs (n=${s.summaryUs.n})`;
    const lines = [
      `   nodevisor (CPL-3 user entry): ${f(r.nodevisor)}`,
      `   nodevisor (PVH entry):        ${f(r.nodevisorPvh)}`,
      'p50Us' in r.nodevisorNoSpare
        ? `   nodevisor (CPL-3, no spare VM made ahead, NODEVISOR_WARM_VM=0): ${f(r.nodevisorNoSpare)}`
        : `   nodevisor (CPL-3, no spare VM): FAILED (${r.nodevisorNoSpare.error})`,
    ];
    if ('skipped' in r.qemu) {
      lines.push(`   QEMU microvm: skipped (${r.qemu.skipped})`);
    } else if (!('p50Us' in r.qemu)) {
      lines.push(`   QEMU microvm: FAILED (${r.qemu.error})`);
    } else {
      lines.push(`   QEMU microvm (spawn -> banner, PVH entry): ${f(r.qemu)}${r.qemu.failures ? `, ${r.qemu.failures} failed runs` : ''}`);
      const x = (ratio?: { p50: number; p99: number }) => (ratio ? `p50 ${ratio.p50}x, p99 ${ratio.p99}x` : 'n/a');
      lines.push(`   QEMU / nodevisor, CPL-3 user entry: ${x(r.ratio)}`);
      lines.push(`   QEMU / nodevisor, PVH entry:        ${x(r.ratioPvh)}`);
    }
    return lines.join('\n');
  },
};

export const benches: Bench<any>[] = [netns, virtio, vmStart, (await import('./factory.js')).factoryBench, netBench];
