/**
 * The native core's own unit tests (native/tests: virtio transport, blk, console, a hostile
 * driver, ACPI tables) under ASan and UBSan. A test-only build: made here (CMake, into
 * build-tests/) when missing or stale, not by `npm ci`. Each case counts in `npm test`; a case
 * that cannot run here (it prints `skip NAME: reason`) is a vitest skip with that reason.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { buildNativeTests, nativeTestsNeed } from '../helpers/native-tests.js';
import { skipUnless } from '../helpers/needs.js';

// Built while the file is collected, so the cases can be listed one by one.
const build: { binary: string } | { error: string } | undefined = nativeTestsNeed.ok
  ? await buildNativeTests().then(
      (binary) => ({ binary }),
      (err: Error) => ({ error: err.message }),
    )
  : undefined;
const binary = build && 'binary' in build ? build.binary : undefined;
const cases = binary ? execFileSync(binary, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean) : [];

describe('native core unit tests (ASan + UBSan)', skipUnless('native core unit tests (CMake builds them)', nativeTestsNeed), () => {
  it('build and list their cases', () => {
    expect(build && 'error' in build ? build.error : '').toBe('');
    expect(cases.length).toBeGreaterThan(20);
  });

  it.for(cases)('%s', (name, ctx) => {
    const run = spawnSync(binary!, ['--only', name], { encoding: 'utf8', timeout: 60_000 });
    const skip = run.stdout.match(new RegExp(`^skip ${name}: (.*)$`, 'm'));
    if (skip && run.status === 0) ctx.skip(skip[1]);
    expect(run.stdout, run.stderr).toContain(`ok   ${name}`);
    expect(run.status).toBe(0);
  });
});
