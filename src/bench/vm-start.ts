/**
 * Start benchmark (DESIGN §7, issues 4 and 9): create + start -> phase 0x41 (the probe's
 * "ready"), for nodevisor from the JS call at both of its entries — the CPL-3 user entry (its
 * default) and the PVH entry, the one QEMU also uses — and for QEMU microvm from spawn to the
 * probe's banner line, on the same probe ELF, in one run; each nodevisor entry is compared with
 * QEMU (p50 and p99 ratios). Figures are microseconds. src/bench/registry.ts prints it.
 */
import { spawn } from 'node:child_process';

import { PHASE_READY, PROBE_BANNER, probeGuestPath } from '../guest/probe.js';
import { Vm } from '../vm/vm.js';
import { round2, summarize, type Summary } from './stats.js';

export interface VmStartBenchOptions {
  iterations?: number;
  qemuIterations?: number;
  memoryMiB?: number;
  /** Per-QEMU-run limit; a run past it counts as failed (QEMU's firmware is emulated on kvm_pvm). */
  qemuTimeoutMs?: number;
  qemuBinary?: string;
}

export interface VmStartBenchResult {
  /** The probe started at its CPL-3 user entry (nodevisor's default). */
  nodevisor: { p50Us: number; p99Us: number; summaryUs: Summary };
  /** The same probe started at its PVH entry, as QEMU starts it. */
  nodevisorPvh: { p50Us: number; p99Us: number; summaryUs: Summary };
  /**
   * QEMU's figures; `skipped` only when the QEMU binary is not installed. Where it is installed
   * and never printed the banner, `error` says why and there are no figures.
   */
  qemu:
    | { p50Us: number; p99Us: number; summaryUs: Summary; failures: number; error?: string }
    | { error: string; failures: number }
    | { skipped: string };
  /** QEMU / nodevisor at the CPL-3 user entry, when QEMU ran. */
  ratio?: StartRatio;
  /** QEMU / nodevisor at the PVH entry (like for like: QEMU starts there too), when QEMU ran. */
  ratioPvh?: StartRatio;
}

/** How many times longer QEMU took than nodevisor, at the median and at the 99th percentile. */
export interface StartRatio {
  p50: number;
  p99: number;
}

async function nodevisorStartUs(kernel: string, memoryMiB: number, bootEntry: 'auto' | 'pvh' = 'auto'): Promise<number> {
  const t0 = process.hrtime.bigint();
  const vm = await Vm.create({ kernel, memoryMiB, bootEntry });
  let readyAt = 0n;
  const ready = new Promise<void>((resolve) =>
    vm.on('phase', (phase) => {
      if (phase.code === PHASE_READY) {
        readyAt = process.hrtime.bigint();
        resolve();
      }
    }),
  );
  await vm.start();
  await ready;
  await vm.stop();
  return Number(readyAt - t0) / 1000;
}

/** Spawn -> the banner on QEMU's stdout; rejects on timeout or exit without the banner. */
function qemuStartUs(binary: string, kernel: string, memoryMiB: number, timeoutMs: number): Promise<number> {
  const args = [
    '-M', 'microvm,accel=kvm', '-cpu', 'host,-arch-capabilities', '-m', `${memoryMiB}M`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio',
    '-device', 'isa-debug-exit', '-kernel', kernel,
  ];
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const finish = (err: Error | undefined, us?: number): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      if (err) reject(err);
      else resolve(us!);
    };
    const timer = setTimeout(() => finish(new Error(`no banner within ${timeoutMs} ms`)), timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('latin1');
      if (out.includes(PROBE_BANNER.trim())) finish(undefined, Number(process.hrtime.bigint() - t0) / 1000);
    });
    child.on('error', (err) => finish(err));
    child.on('exit', (code) => finish(new Error(`qemu exited (${String(code)}) before the banner`)));
  });
}

export async function benchVmStart(options: VmStartBenchOptions = {}): Promise<VmStartBenchResult> {
  const kernel = probeGuestPath();
  const memoryMiB = options.memoryMiB ?? 128;
  const iterations = options.iterations ?? 200;
  for (let i = 0; i < 10; i++) await nodevisorStartUs(kernel, memoryMiB); // warm up
  const ours: number[] = [];
  for (let i = 0; i < iterations; i++) ours.push(await nodevisorStartUs(kernel, memoryMiB));
  const oursSummary = summarize(ours);
  const pvh: number[] = [];
  for (let i = 0; i < iterations; i++) pvh.push(await nodevisorStartUs(kernel, memoryMiB, 'pvh'));
  const pvhSummary = summarize(pvh);
  const result: VmStartBenchResult = {
    nodevisor: { p50Us: oursSummary.median, p99Us: oursSummary.p99, summaryUs: oursSummary },
    nodevisorPvh: { p50Us: pvhSummary.median, p99Us: pvhSummary.p99, summaryUs: pvhSummary },
    qemu: { skipped: '' },
  };

  const binary = options.qemuBinary ?? 'qemu-system-x86_64';
  const qemuRuns = options.qemuIterations ?? 10;
  const theirs: number[] = [];
  let failures = 0;
  let lastError: string | undefined;
  for (let i = 0; i < qemuRuns; i++) {
    try {
      theirs.push(await qemuStartUs(binary, kernel, memoryMiB, options.qemuTimeoutMs ?? 10_000));
    } catch (err) {
      failures++;
      lastError = (err as Error).message;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        result.qemu = { skipped: `${binary} is not installed (apt-get install qemu-system-x86)` };
        return result;
      }
      if (failures >= 2 && theirs.length === 0) break; // it does not boot here: do not wait 10x
    }
  }
  if (theirs.length === 0) {
    result.qemu = { error: `QEMU did not print the probe banner: ${lastError ?? 'unknown'}`, failures };
    return result;
  }
  const qemuSummary = summarize(theirs);
  result.qemu = { p50Us: qemuSummary.median, p99Us: qemuSummary.p99, summaryUs: qemuSummary, failures };
  if (lastError !== undefined) result.qemu.error = lastError;
  const ratio = (ours: Summary): StartRatio => ({ p50: round2(qemuSummary.median / ours.median), p99: round2(qemuSummary.p99 / ours.p99) });
  result.ratio = ratio(oursSummary);
  result.ratioPvh = ratio(pvhSummary);
  return result;
}
