/** Summaries of timing samples, shared by every benchmark. */

export interface Summary {
  n: number;
  median: number;
  p99: number;
  min: number;
  max: number;
}

/** The p-th percentile (nearest rank) of ascending `sorted`. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

export const round2 = (x: number): number => Math.round(x * 100) / 100;

/** Median, p99, min and max of `samples` (any order), rounded to 2 decimals. */
export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    median: round2(percentile(sorted, 50)),
    p99: round2(percentile(sorted, 99)),
    min: round2(sorted[0] ?? 0),
    max: round2(sorted[sorted.length - 1] ?? 0),
  };
}
