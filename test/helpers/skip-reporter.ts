/**
 * A vitest reporter that makes skips visible and, in CI, accountable: at the end of a run it
 * prints every skipped test grouped by its reason (the task's `meta.skipReason` from
 * skipUnless, or the note of `ctx.skip(note)`), and with CI=true it fails the run when a test
 * was skipped for a reason that no line of test/skip-allowlist.txt matches (a skip without a
 * reason never matches). With NODEVISOR_SKIP_REPORT=<file> it also writes the list there
 * (.ci/run prints it). Runs in the vitest main process.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Reporter, TestModule } from 'vitest/node';

export const ALLOWLIST = join(import.meta.dirname, '..', 'skip-allowlist.txt');
const NO_REASON = '(no reason given)';

export function readAllowlist(path = ALLOWLIST): RegExp[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => new RegExp(line));
}

export default class SkipReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const byReason = new Map<string, string[]>();
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state !== 'skipped') continue;
        const reason = result.note ?? test.meta().skipReason ?? NO_REASON;
        const names = byReason.get(reason) ?? [];
        names.push(`${module.relativeModuleId} > ${test.fullName}`);
        byReason.set(reason, names);
      }
    }
    const ci = process.env.CI === 'true' || process.env.CI === '1';
    const allow = ci ? readAllowlist() : [];
    const lines: string[] = [];
    const refused: string[] = [];
    for (const [reason, names] of byReason) {
      const allowed = reason !== NO_REASON && allow.some((re) => re.test(reason));
      if (ci && !allowed) refused.push(reason);
      lines.push(`${names.length} skipped${ci ? (allowed ? ' (allowed)' : ' (NOT on the allow-list)') : ''}: ${reason}`);
      for (const name of names) lines.push(`    ${name}`);
    }
    const text = lines.length ? `skipped tests by reason:\n${lines.join('\n')}\n` : 'no test was skipped\n';
    process.stdout.write(`\n${text}`);
    if (process.env.NODEVISOR_SKIP_REPORT) writeFileSync(process.env.NODEVISOR_SKIP_REPORT, text);
    if (refused.length) {
      process.stdout.write(
        `\nCI: ${refused.length} skip reason(s) not on the allow-list (test/skip-allowlist.txt); failing the run:\n` +
          refused.map((r) => `  - ${r}\n`).join(''),
      );
      process.exitCode = 1;
    }
  }
}
