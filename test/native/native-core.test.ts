/**
 * The native core's own unit tests (native/tests: virtio transport, blk, console, a hostile
 * driver, ACPI tables, snapshot state, device bounds) under ASan and UBSan. A test-only build:
 * made here (CMake, into build-tests/) when missing or stale, not by `npm ci`. Each case counts
 * in `npm test`; a case that cannot run here (it prints `skip NAME: reason`) is a vitest skip
 * with that reason.
 */
import { describe, expect, it } from 'vitest';

import { nativeTestCases, nativeTestsNeed, runNativeCase } from '../helpers/native-tests.js';
import { skipUnless } from '../helpers/needs.js';

// Built while the file is collected, so the cases can be listed one by one.
const { binary, cases, error } = await nativeTestCases('asan');

describe('native core unit tests (ASan + UBSan)', skipUnless('native core unit tests (CMake builds them)', nativeTestsNeed), () => {
  it('build and list their cases', () => {
    expect(error).toBe('');
    expect(cases.length).toBeGreaterThan(20);
  });

  it.for(cases)('%s', (name, ctx) => {
    runNativeCase(binary!, name, ctx);
  });
});
