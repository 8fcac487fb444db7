/**
 * A full garbage collection between timed series. V8 collects the old generation in steps on
 * the JS thread (incremental marking, ~5 ms per step on these machines), and a step that lands
 * while a sample waits for its VM delays that sample by as much: garbage left by the previous
 * series (its samples, the charts it rendered) is collected before the next one starts instead.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

export function collectGarbage(): void {
  if (!gc) {
    // `gc` without `--expose-gc` on the command line: exposed to contexts made from now on.
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}
