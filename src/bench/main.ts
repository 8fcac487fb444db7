/**
 * `npm run bench`: runs every benchmark this machine can run, prints the figures, and writes
 * them as JSON to bench-results/<date>.json (or the path given with --out). A benchmark whose
 * need is missing (root, /dev/kvm, QEMU) is listed as skipped with the reason.
 *
 *   npm run bench [-- --only netns,vm-start] [--out file.json] [--quick]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

import { packageRoot } from '../native/binding.js';
import { collectGarbage } from './gc.js';
import { benches, type BenchContext } from './registry.js';

interface Args {
  only?: string[];
  out?: string;
  quick: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--only') args.only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a === '--out') args.out = argv[++i];
    else if (a === '--quick') args.quick = true;
    else throw new Error(`unknown option ${a}; usage: bench [--only a,b] [--out file.json] [--quick]`);
  }
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const ctx: BenchContext = { quick: args.quick };
  const results: Record<string, unknown> = {};
  const skipped: Record<string, string> = {};
  let failed = 0;
  for (const bench of benches) {
    if (args.only && !args.only.includes(bench.name)) continue;
    const missing = await bench.missing();
    if (missing) {
      skipped[bench.name] = missing;
      process.stdout.write(`[skip] ${bench.name}: ${missing}\n`);
      continue;
    }
    process.stdout.write(`== ${bench.name}: ${bench.title}\n`);
    // Each bench starts with the heap collected: the previous one's garbage (its samples, the
    // charts it rendered) is not left for V8 to collect in steps on the JS thread while this
    // one measures.
    collectGarbage();
    try {
      const result = await bench.run(ctx);
      results[bench.name] = result;
      process.stdout.write(`${bench.format(result)}\n\n`);
    } catch (err) {
      failed++;
      results[bench.name] = { error: (err as Error).message };
      process.stdout.write(`   FAILED: ${(err as Error).message}\n\n`);
    }
  }
  const out = resolve(args.out ?? join(packageRoot(), 'bench-results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`));
  await mkdir(dirname(out), { recursive: true });
  const report = { date: new Date().toISOString(), node: process.version, quick: args.quick, results, skipped };
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`figures written to ${out}\n`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
