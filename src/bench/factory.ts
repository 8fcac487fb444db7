/**
 * VM factory figures (issue 12, DESIGN §7) on the probe guest, each as p50/p99 at 128 MiB,
 * 512 MiB and 2 GiB of guest memory:
 * - cold: `Vm.create` + start until the agent answers its first ping (the factory's direct boot);
 * - clone: `getVm` on a template factory: restore (copy-on-write) + resume + the generation check;
 * - hand-over: `getVm` on a template factory with a full pool: take and resume (the pooled VM
 *   answered its generation check when it joined the pool; a Linux guest also gets a time sync);
 * - hand-over, back to back: `poolSize` getVm calls in a row on a full pool, nothing drained
 *   between them (a burst of requests; the first of each burst starts from an idle process);
 * - pool take: `getBaseVm` on that full pool alone (the paused VM, before the resume).
 * Then sustained VM starts per second from the template for 10 s (with each getVm's latency
 * there: back to back, the previous VMs' teardown overlapping), once more with the whole
 * process on one CPU (one-cpu.ts), and the resident memory (PSS,
 * /proc/self/smaps_rollup) each idle clone adds. "Ready": the guest answered on its agent channel
 * (for a pooled VM, when it joined the pool) and runs. Results are returned as JSON figures and drawn as SVG charts
 * (src/bench/chart.ts) into bench-results/.
 *
 * Everything runs on the JS thread of this process, one VM at a time unless said otherwise; a
 * VM is stopped after its sample, outside the timed span, and the background teardown of
 * stopped VMs is drained before the next latency sample (it would compete for the CPU; the
 * sustained run keeps it in the loop, as a server would). Each latency series starts with a
 * full garbage collection (gc.ts): the garbage of the series before it is not collected in
 * steps on the JS thread while this one is timed; what a series allocates itself still is.
 */
import { readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';

import { buildFactory, type Factory } from '../factory/factory.js';
import type { FactoryVm } from '../factory/hypervisor.js';
import { tmpfsStateFs } from '../factory/tmpfs.js';
import type { CacheFactory } from '../factory/cache.js';
import { vmHypervisor, type FactoryVmHandle } from '../factory/vm-hypervisor.js';
import { checkFactoryVmConfig, type FactoryVmConfig } from '../factory/vm-config.js';
import { probeGuestPath } from '../guest/probe.js';
import { Vm } from '../vm/vm.js';
import { packageRoot } from '../native/binding.js';
import { writeGroupedBarChart, type BarRow } from './chart.js';
import { collectGarbage } from './gc.js';
import { ConfineError, onOneCpu } from './one-cpu.js';
// Types only: registry.ts imports this file when it loads, so a value import back would be a cycle.
import type { Bench } from './registry.js';
import { round2, summarize, type Summary } from './stats.js';

export interface FactoryBenchOptions {
  iterations?: number;
  memorySizesMiB?: number[];
  sustainSeconds?: number;
  /** getVm calls in flight during each sustained run (one run per entry). */
  sustainConcurrency?: number[];
  pssClones?: number;
  poolSize?: number;
  /** Where the SVG charts go; default <package>/bench-results. */
  chartDir?: string;
}

type StartPath = 'cold' | 'clone' | 'hand-over' | 'hand-over, back to back' | 'pool take';

export interface LatencyFigure {
  path: StartPath;
  memoryMiB: number;
  p50Us: number;
  p99Us: number;
  summaryUs: Summary;
}

export interface SustainedFigure {
  seconds: number;
  concurrency: number;
  /** The CPUs the whole process ran on: every one it may use, or one (`onOneCpu`). */
  cpus: 'all' | 'one';
  starts: number;
  perSecond: number;
  perSecondBuckets: number[];
  /** Each getVm's own latency in the run (µs). */
  getVmUs: Summary;
}

export interface FactoryBenchResult {
  ready: string;
  /** 1-minute load average before and after: other work on the machine inflates the figures. */
  loadAverage: { before: number; after: number };
  latency: LatencyFigure[];
  /** Why the clone figures are missing, when they are. */
  clonesSkipped?: string;
  sustained?: SustainedFigure[];
  /** Why the run on one CPU is missing, when it is. */
  oneCpuSkipped?: string;
  pssPerIdleClone?: { memoryMiB: number; clones: number; pssKiBPerClone: number; rssKiBPerClone: number }[];
  charts: string[];
}

const nowUs = (): number => Number(process.hrtime.bigint()) / 1e3;

function vmConfigOf(memoryMiB: number): FactoryVmConfig {
  return { hypervisorConfig: { kernelPath: probeGuestPath(), kernelParams: [], memorySize: memoryMiB } };
}

/** "1 getVm in flight", with "the process on one CPU" for the confined run. */
function sustainedLabel(s: SustainedFigure): string {
  return `${s.concurrency} getVm in flight${s.cpus === 'one' ? ', the process on one CPU' : ''}`;
}

function figure(path: StartPath, memoryMiB: number, samples: number[]): LatencyFigure {
  const s = summarize(samples);
  return { path, memoryMiB, p50Us: s.median, p99Us: s.p99, summaryUs: s };
}

/** Why template clones cannot be measured here, or undefined. */
function clonesMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (the template lives on a tmpfs mount)';
  return undefined;
}

let benchTemplates = 0;

/** A factory on a template under /run/nodevisor/bench-<pid>-<n>; `done` closes it and removes the directory. */
async function templateFactory(memoryMiB: number, cache: number): Promise<{ factory: Factory<FactoryVmHandle>; done(): Promise<void> }> {
  const dir = join('/run/nodevisor', `bench-${process.pid}-${++benchTemplates}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    const factory = await buildFactory(
      { template: true, cache, vmConfig: vmConfigOf(memoryMiB), statePath: join(dir, 'template') },
      false,
      { hypervisor: vmHypervisor(), stateFs: tmpfsStateFs },
    );
    return {
      factory,
      async done() {
        await factory.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function timeCold(memoryMiB: number, iterations: number): Promise<number[]> {
  const hypervisor = vmHypervisor();
  const config = checkFactoryVmConfig(vmConfigOf(memoryMiB));
  const samples: number[] = [];
  collectGarbage();
  for (let i = 0; i < iterations + 5; i++) {
    await Vm.drainTeardown();
    const t0 = nowUs();
    const vm = await hypervisor.boot(config);
    const t = nowUs() - t0;
    await vm.stop();
    if (i >= 5) samples.push(t); // the first few warm up code paths and the thread pool
  }
  return samples;
}

async function timeGetVm(
  factory: Factory<FactoryVmHandle>,
  iterations: number,
  options: { beforeEach?: () => Promise<void>; takeOnly?: boolean } = {},
): Promise<number[]> {
  const config = factory.config();
  const samples: number[] = [];
  collectGarbage();
  for (let i = 0; i < iterations + 5; i++) {
    await options.beforeEach?.();
    await Vm.drainTeardown();
    const t0 = nowUs();
    const vm = options.takeOnly ? await factory.getBaseVm() : await factory.getVm(config);
    const t = nowUs() - t0;
    await vm.stop();
    if (i >= 5) samples.push(t);
  }
  return samples;
}

/** getVm calls in bursts of `burst` on a full pool: nothing is drained or awaited in between. */
async function timeHandOverBursts(factory: Factory<FactoryVmHandle>, pool: CacheFactory<FactoryVmHandle>, burst: number, iterations: number): Promise<number[]> {
  const config = factory.config();
  const samples: number[] = [];
  collectGarbage();
  for (let round = 0; samples.length < iterations + burst; round++) {
    await pool.filled();
    await Vm.drainTeardown();
    const handed: FactoryVm[] = [];
    for (let i = 0; i < burst; i++) {
      const t0 = nowUs();
      handed.push(await factory.getVm(config));
      const t = nowUs() - t0;
      if (round > 0) samples.push(t); // the first round warms up
    }
    await Promise.all(handed.map((vm) => vm.stop()));
  }
  return samples.slice(0, iterations);
}

async function sustainedStarts(seconds: number, concurrency: number, cpus: 'all' | 'one' = 'all'): Promise<SustainedFigure> {
  const { factory, done } = await templateFactory(128, 0);
  try {
    const config = factory.config();
    const buckets = new Array<number>(seconds).fill(0);
    const stops = new Set<Promise<void>>();
    const t0 = nowUs();
    const end = t0 + seconds * 1e6;
    let starts = 0;
    const latencies: number[] = [];
    const worker = async (): Promise<void> => {
      while (nowUs() < end) {
        const asked = nowUs();
        const vm = await factory.getVm(config);
        const at = nowUs();
        latencies.push(at - asked);
        if (at > end) {
          await vm.stop();
          break;
        }
        starts++;
        buckets[Math.min(seconds - 1, Math.floor((at - t0) / 1e6))]!++;
        // Stops overlap the next starts (teardown is not what is measured), bounded in number.
        const stop: Promise<void> = vm.stop().finally(() => stops.delete(stop));
        stops.add(stop);
        if (stops.size > 64) await Promise.race(stops);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const elapsed = (nowUs() - t0) / 1e6;
    await Promise.all(stops);
    return {
      seconds: round2(elapsed),
      concurrency,
      cpus,
      starts,
      perSecond: round2(starts / Math.min(elapsed, seconds)),
      perSecondBuckets: buckets,
      getVmUs: summarize(latencies),
    };
  } finally {
    await done();
  }
}

function smapsRollupKiB(): { pss: number; rss: number } {
  const text = readFileSync('/proc/self/smaps_rollup', 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { pss: field('Pss'), rss: field('Rss') };
}

/** The median of a few readings 20 ms apart: the JS heap grows and shrinks under the count. */
async function settledSmapsKiB(): Promise<{ pss: number; rss: number }> {
  const readings: { pss: number; rss: number }[] = [];
  for (let i = 0; i < 5; i++) {
    readings.push(smapsRollupKiB());
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1]!;
  return { pss: median(readings.map((r) => r.pss)), rss: median(readings.map((r) => r.rss)) };
}

async function pssPerClone(memoryMiB: number, clones: number) {
  const { factory, done } = await templateFactory(memoryMiB, 0);
  const held: FactoryVm[] = [];
  try {
    const config = factory.config();
    held.push(await factory.getVm(config)); // a first clone: one-time costs are not per clone
    await Vm.drainTeardown(); // VMs stopped earlier must not give memory back during the count
    await new Promise((resolve) => setTimeout(resolve, 100));
    const before = await settledSmapsKiB();
    for (let i = 0; i < clones; i++) held.push(await factory.getVm(config));
    await new Promise((resolve) => setTimeout(resolve, 200)); // idle: the probes park on their wait port
    const after = await settledSmapsKiB();
    return {
      memoryMiB,
      clones,
      pssKiBPerClone: round2((after.pss - before.pss) / clones),
      rssKiBPerClone: round2((after.rss - before.rss) / clones),
    };
  } finally {
    await Promise.all(held.map((vm) => vm.stop()));
    await done();
  }
}

const sizeLabel = (mib: number): string => (mib >= 1024 && mib % 1024 === 0 ? `${mib / 1024} GiB` : `${mib} MiB`);

async function drawCharts(result: FactoryBenchResult, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const charts: string[] = [];
  const rows: BarRow[] = result.latency.map((f) => ({ group: sizeLabel(f.memoryMiB), series: f.path, value: f.p50Us, high: f.p99Us }));
  charts.push(
    await writeGroupedBarChart(join(dir, 'factory-start-latency.svg'), {
      title: 'VM start → guest ready (probe guest)',
      subtitle: `bars p50, ticks p99, µs; ready = the guest answered (a pooled one when it joined the pool) and runs${result.clonesSkipped ? `; clones: ${result.clonesSkipped}` : ''}`,
      xTitle: 'guest memory',
      yTitle: 'µs (log scale)',
      log: true,
      ticks: true,
      legendTitle: 'path',
      rows,
      rule: { value: 1000, label: 'clone target p50 1 ms' },
    }),
  );
  if (result.sustained) {
    const runs = result.sustained;
    charts.push(
      await writeGroupedBarChart(join(dir, 'factory-sustained-starts.svg'), {
        title: `VM starts from the template, per second`,
        subtitle: `${runs.map((r) => `${r.perSecond}/s with ${sustainedLabel(r)}`).join(', ')}; getVm + stop, 128 MiB probe clones`,
        xTitle: 'second',
        yTitle: 'starts in that second',
        legendTitle: 'getVm in flight, CPUs',
        rows: runs.flatMap((r) => r.perSecondBuckets.map((n, i) => ({ group: String(i + 1), series: sustainedLabel(r), value: n }))),
        rule: { value: 200, label: 'target 200/s' },
      }),
    );
  }
  if (result.pssPerIdleClone) {
    charts.push(
      await writeGroupedBarChart(join(dir, 'factory-idle-clone-memory.svg'), {
        title: 'Host memory per idle clone',
        subtitle: 'delta of /proc/self/smaps_rollup over the clones, KiB per clone',
        xTitle: 'guest memory',
        yTitle: 'KiB per clone',
        legendTitle: '',
        rows: result.pssPerIdleClone.flatMap((p) => [
          { group: sizeLabel(p.memoryMiB), series: 'PSS', value: p.pssKiBPerClone },
          { group: sizeLabel(p.memoryMiB), series: 'RSS', value: p.rssKiBPerClone },
        ]),
        rule: { value: 2048, label: 'target 2 MiB' },
      }),
    );
  }
  return charts;
}

export async function benchFactory(options: FactoryBenchOptions = {}): Promise<FactoryBenchResult> {
  const iterations = options.iterations ?? 200;
  const sizes = options.memorySizesMiB ?? [128, 512, 2048];
  const poolSize = options.poolSize ?? 4;
  const result: FactoryBenchResult = {
    ready: 'the guest answered on its agent channel (ping, probe.generation) and runs; a pooled VM answered when it joined the pool',
    loadAverage: { before: round2(loadavg()[0]!), after: 0 },
    latency: [],
    charts: [],
  };
  const missing = clonesMissing();
  if (missing) result.clonesSkipped = missing;

  for (const memoryMiB of sizes) {
    result.latency.push(figure('cold', memoryMiB, await timeCold(memoryMiB, iterations)));
    if (missing) continue;
    const template = await templateFactory(memoryMiB, 0);
    try {
      result.latency.push(figure('clone', memoryMiB, await timeGetVm(template.factory, iterations)));
    } finally {
      await template.done();
    }
    const pooled = await templateFactory(memoryMiB, poolSize);
    try {
      const pool = pooled.factory.baseFactory as CacheFactory<FactoryVmHandle>;
      const beforeEach = () => pool.filled();
      result.latency.push(figure('hand-over', memoryMiB, await timeGetVm(pooled.factory, iterations, { beforeEach })));
      result.latency.push(figure('hand-over, back to back', memoryMiB, await timeHandOverBursts(pooled.factory, pool, poolSize, iterations)));
      result.latency.push(figure('pool take', memoryMiB, await timeGetVm(pooled.factory, iterations, { beforeEach, takeOnly: true })));
    } finally {
      await pooled.done();
    }
  }
  if (!missing) {
    result.sustained = [];
    for (const concurrency of options.sustainConcurrency ?? [1, 4]) {
      result.sustained.push(await sustainedStarts(options.sustainSeconds ?? 10, concurrency));
    }
    // Issue 12's "≥ 200 starts/s on one core": the same run with every thread on one CPU.
    try {
      const seconds = options.sustainSeconds ?? 10;
      result.sustained.push((await onOneCpu(() => sustainedStarts(seconds, 1, 'one'))).value);
    } catch (err) {
      if (!(err instanceof ConfineError)) throw err;
      result.oneCpuSkipped = `cannot confine the process to one CPU: ${err.message}`;
    }
    const clones = options.pssClones ?? 50;
    result.pssPerIdleClone = [];
    for (const memoryMiB of [sizes[0]!, sizes[sizes.length - 1]!]) result.pssPerIdleClone.push(await pssPerClone(memoryMiB, clones));
  }
  result.loadAverage.after = round2(loadavg()[0]!);
  result.charts = await drawCharts(result, options.chartDir ?? join(packageRoot(), 'bench-results'));
  return result;
}

export const factoryBench: Bench<FactoryBenchResult> = {
  name: 'factory',
  title: 'VM factory: cold start, template clone and pool hand-over → ready; sustained starts; memory per idle clone',
  async missing() {
    return (await import('./registry.js')).needKvm();
  },
  run(ctx) {
    return benchFactory(ctx.quick ? { iterations: 20, sustainSeconds: 2, pssClones: 20 } : {});
  },
  format(r) {
    const lines = ['   start → ready (µs)                    p50       p99'];
    for (const f of r.latency) {
      lines.push(`   ${f.path.padEnd(23)} ${sizeLabel(f.memoryMiB).padStart(8)}  ${String(f.p50Us).padStart(8)}  ${String(f.p99Us).padStart(8)}  (n=${f.summaryUs.n})`);
    }
    if (r.clonesSkipped) lines.push(`   clone, hand-over, sustained, idle-clone memory: skipped (${r.clonesSkipped})`);
    for (const s of r.sustained ?? []) {
      lines.push(
        `   sustained from the template: ${s.perSecond} starts/s (${s.starts} in ${s.seconds} s, ${sustainedLabel(s)}); ` +
          `getVm p50 ${round2(s.getVmUs.median)} µs, p99 ${round2(s.getVmUs.p99)} µs`,
      );
    }
    if (r.oneCpuSkipped) lines.push(`   sustained on one CPU: skipped (${r.oneCpuSkipped})`);
    for (const p of r.pssPerIdleClone ?? []) {
      lines.push(`   idle clone at ${sizeLabel(p.memoryMiB)}: PSS ${p.pssKiBPerClone} KiB, RSS ${p.rssKiBPerClone} KiB (over ${p.clones} clones)`);
    }
    lines.push(`   load average (1 min): ${r.loadAverage.before} before, ${r.loadAverage.after} after`);
    lines.push(`   charts: ${r.charts.join(', ')}`);
    return lines.join('\n');
  },
};
