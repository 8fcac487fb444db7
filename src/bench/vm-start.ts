/**
 * Start benchmark (DESIGN §7, issues 4 and 9): create + start -> phase 0x41 (the probe's
 * "ready"), for nodevisor from the JS call at both of its entries — the CPL-3 user entry (its
 * default) and the PVH entry, the one QEMU also uses — and for QEMU microvm from spawn to the
 * probe's banner line, on the same probe ELF, in one run; each nodevisor entry is compared with
 * QEMU (p50 and p99 ratios). Figures are microseconds. src/bench/registry.ts prints it.
 */
import { execFile, spawn } from 'node:child_process';
import { dirname, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

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
   * The CPL-3 start again, in a fresh process with NODEVISOR_WARM_VM=0: no spare KVM VM made
   * ahead by the prewarm thread (native/vmm/kvm/warm_vm.h), so every start pays for creating
   * the VM, its memory slot, irqchip and vCPUs. `error` when that process failed.
   */
  nodevisorNoSpare: { p50Us: number; p99Us: number; summaryUs: Summary } | { error: string };
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

/**
 * `iterations` CPL-3 starts measured like nodevisorStartUs, in a child Node process with
 * NODEVISOR_WARM_VM=0 (the switch is read once per process, so it cannot be flipped here).
 */
async function nodevisorNoSpareUs(memoryMiB: number, iterations: number): Promise<number[]> {
  // The built modules: this file runs from dist/src/bench, or from src/bench under a test
  // runner (which builds dist first), and the child imports plain JS.
  const here = dirname(fileURLToPath(import.meta.url));
  const distSrc = here.includes(`${sep}dist${sep}src${sep}`) ? resolve(here, '..') : resolve(here, '..', '..', 'dist', 'src');
  const module = (path: string) => JSON.stringify(pathToFileURL(resolve(distSrc, path)).href);
  const program = `
    const { Vm } = await import(${module('vm/vm.js')});
    const { PHASE_READY, probeGuestPath } = await import(${module('guest/probe.js')});
    const samples = [];
    for (let i = 0; i < ${iterations + 10}; i++) {
      const t0 = process.hrtime.bigint();
      const vm = await Vm.create({ kernel: probeGuestPath(), memoryMiB: ${memoryMiB} });
      const ready = new Promise((resolve) => vm.on('phase', (p) => p.code === PHASE_READY && resolve(process.hrtime.bigint())));
      await vm.start();
      const at = await ready;
      await vm.stop();
      if (i >= 10) samples.push(Number(at - t0) / 1000); // the first ten warm up code paths
    }
    process.stdout.write(JSON.stringify(samples));`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', program], {
    env: { ...process.env, NODEVISOR_WARM_VM: '0' },
    maxBuffer: 16 << 20,
    timeout: 300_000,
  });
  return JSON.parse(stdout) as number[];
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
  let nodevisorNoSpare: VmStartBenchResult['nodevisorNoSpare'];
  try {
    const noSpare = summarize(await nodevisorNoSpareUs(memoryMiB, iterations));
    nodevisorNoSpare = { p50Us: noSpare.median, p99Us: noSpare.p99, summaryUs: noSpare };
  } catch (err) {
    nodevisorNoSpare = { error: (err as Error).message };
  }
  const result: VmStartBenchResult = {
    nodevisor: { p50Us: oursSummary.median, p99Us: oursSummary.p99, summaryUs: oursSummary },
    nodevisorPvh: { p50Us: pvhSummary.median, p99Us: pvhSummary.p99, summaryUs: pvhSummary },
    nodevisorNoSpare,
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
