/**
 * Waiting for an event with a generous bound, instead of sleeping for a window and hoping the
 * event fell into it: `until` polls `cond` every few milliseconds and fails only after
 * `ms` (default 10 s) without it, naming what it waited for.
 */
export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
