/**
 * Network namespace costs: create+delete per second, and one `enterNetNs` (two setns on the
 * JS thread plus opening and checking the target) as median and p99. Needs root. The bench
 * main (src/bench/main.ts) prints what this returns.
 */
import { createNetNs, deleteNetNs } from '../netns/netns.js';
import { enterNetNs } from '../netns/enter.js';
import { round2 as round, summarize } from './stats.js';

export interface NetnsBenchOptions {
  /** create+delete cycles timed back to back. */
  cycles?: number;
  /** enterNetNs calls timed one by one. */
  enters?: number;
  /** Where the namespaces are bound; default /run/netns. */
  dir?: string;
}

export interface NetnsBenchResult {
  createDelete: { cycles: number; totalMs: number; perSecond: number };
  enterNetNs: { iterations: number; medianUs: number; p99Us: number; minUs: number; maxUs: number };
}

export async function benchNetns(options: NetnsBenchOptions = {}): Promise<NetnsBenchResult> {
  const cycles = options.cycles ?? 200;
  const enters = options.enters ?? 10_000;
  const where = options.dir === undefined ? {} : { dir: options.dir };

  const start = process.hrtime.bigint();
  for (let i = 0; i < cycles; i++) {
    await deleteNetNs(await createNetNs(where));
  }
  const totalMs = Number(process.hrtime.bigint() - start) / 1e6;

  const path = await createNetNs(where);
  const samples: number[] = new Array<number>(enters);
  try {
    const noop = (): number => 0;
    for (let i = 0; i < Math.min(100, enters); i++) enterNetNs(path, noop); // warm-up
    for (let i = 0; i < enters; i++) {
      const t0 = process.hrtime.bigint();
      enterNetNs(path, noop);
      samples[i] = Number(process.hrtime.bigint() - t0) / 1e3;
    }
  } finally {
    await deleteNetNs(path);
  }
  const enter = summarize(samples);

  return {
    createDelete: { cycles, totalMs: round(totalMs), perSecond: round(cycles / (totalMs / 1000)) },
    enterNetNs: {
      iterations: enters,
      medianUs: enter.median,
      p99Us: enter.p99,
      minUs: enter.min,
      maxUs: enter.max,
    },
  };
}
