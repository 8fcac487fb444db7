/**
 * The native core's unit tests (native/tests) are a test-only build: `npm ci` does not make
 * them. The test run builds them here, with CMake (CMakeLists.txt, its non-cmake-js part) into
 * build-tests/, when they are missing or stale; CMake decides what is stale, so a second run
 * costs a second. .ci/run may pre-build them the same way.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { needs, type Need } from './needs.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
export const NATIVE_TESTS_DIR = join(root, 'build-tests');
export const NATIVE_TESTS_BINARY = join(NATIVE_TESTS_DIR, 'nodevisor_native_tests');

export const nativeTestsNeed: Need = needs.command('cmake');

/** Configures (once) and builds the unit-test binary; rejects with the compiler's output. */
export async function buildNativeTests(): Promise<string> {
  if (!existsSync(join(NATIVE_TESTS_DIR, 'CMakeCache.txt'))) {
    const generator = needs.command('ninja').ok ? ['-G', 'Ninja'] : [];
    await run('cmake', ['-S', root, '-B', NATIVE_TESTS_DIR, ...generator], { maxBuffer: 16 << 20 });
  }
  await run('cmake', ['--build', NATIVE_TESTS_DIR, '--parallel', String(availableParallelism())], {
    maxBuffer: 64 << 20,
  }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
    throw new Error(`building the native unit tests failed:\n${err.stdout ?? ''}\n${err.stderr ?? err.message}`);
  });
  return NATIVE_TESTS_BINARY;
}
