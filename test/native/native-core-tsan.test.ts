/**
 * The native core's unit tests (native/tests) under ThreadSanitizer: device workers, register
 * accesses from "vCPU" threads and host calls run concurrently there, and every data race is
 * a failure. A test-only build like the ASan one (test/helpers/native-tests.ts): made here, into
 * build-tsan/ (CMakeLists.txt, NODEVISOR_TSAN_TESTS), when missing or stale. Each case runs on
 * its own, like test/native/native-core.test.ts.
 *
 * Races with the guest are the point of guest memory (the driver and the device share it; the
 * rings' indexes order them): native/tests/tsan.supp suppresses those, and only those.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { nativeTestCases, nativeTestsNeed, runNativeCase } from '../helpers/native-tests.js';
import { skipUnless } from '../helpers/needs.js';

const root = join(import.meta.dirname, '..', '..');
const { binary, cases, error } = await nativeTestCases('tsan');

describe('native core unit tests (ThreadSanitizer)', skipUnless('native core unit tests under ThreadSanitizer (CMake builds them)', nativeTestsNeed), () => {
  it('build and list their cases', () => {
    expect(error).toBe('');
    expect(cases.length).toBeGreaterThan(20);
  });

  it.for(cases)('%s', { timeout: 200_000 }, (name, ctx) => {
    const output = runNativeCase(binary!, name, ctx, {
      timeout: 180_000,
      env: {
        NODEVISOR_TEST_TIME_SCALE: '4',
        TSAN_OPTIONS: `halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=${join(root, 'native', 'tests', 'tsan.supp')}`,
      },
    });
    expect(output).not.toContain('ThreadSanitizer');
  });
});
