/**
 * The native core's unit tests (native/tests) are a test-only build: `npm ci` does not make
 * them. The test run builds them here, with CMake (CMakeLists.txt, its non-cmake-js part) into
 * build-tests/, when they are missing or stale; CMake decides what is stale, so a second run
 * costs a second. .ci/run may pre-build them the same way.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';

import { needs, type Need } from './needs.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');

/** The two builds of the same sources (CMakeLists.txt): ASan + UBSan, and ThreadSanitizer. */
const FLAVOURS = {
  asan: { dir: 'build-tests', target: 'nodevisor_native_tests', options: [] as string[] },
  tsan: { dir: 'build-tsan', target: 'nodevisor_native_tests_tsan', options: ['-DNODEVISOR_TSAN_TESTS=ON'] },
};
export type NativeTestFlavour = keyof typeof FLAVOURS;

export const nativeTestsNeed: Need = needs.command('cmake');

/** Configures (once) and builds the unit-test binary of `flavour`; rejects with the compiler's output. */
export async function buildNativeTests(flavour: NativeTestFlavour = 'asan'): Promise<string> {
  const { dir, target, options } = FLAVOURS[flavour];
  const buildDir = join(root, dir);
  if (!existsSync(join(buildDir, 'CMakeCache.txt'))) {
    const generator = needs.command('ninja').ok ? ['-G', 'Ninja'] : [];
    await run('cmake', ['-S', root, '-B', buildDir, ...generator, ...options], { maxBuffer: 16 << 20 });
  }
  await run('cmake', ['--build', buildDir, '--target', target, '--parallel', String(availableParallelism())], {
    maxBuffer: 64 << 20,
  }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
    throw new Error(`building the native unit tests (${flavour}) failed:\n${err.stdout ?? ''}\n${err.stderr ?? err.message}`);
  });
  return join(buildDir, target);
}

/**
 * Builds `flavour` while the test file is collected and lists its cases, so each case is a
 * vitest test of its own. A build failure is kept as `error` for a test to report.
 */
export async function nativeTestCases(flavour: NativeTestFlavour): Promise<{ binary?: string; cases: string[]; error: string }> {
  if (!nativeTestsNeed.ok) return { cases: [], error: '' };
  try {
    const binary = await buildNativeTests(flavour);
    const cases = (await run(binary, ['--list'], { encoding: 'utf8' })).stdout.split('\n').filter(Boolean);
    return { binary, cases, error: '' };
  } catch (err) {
    return { cases: [], error: (err as Error).message };
  }
}

/**
 * Runs one case on its own. `ok   NAME` and exit 0 pass; `skip NAME: reason` (native/tests
 * SKIP) becomes a vitest skip with that reason; anything else fails with the case's output.
 */
export function runNativeCase(
  binary: string,
  name: string,
  ctx: { skip(note?: string): never },
  options: { env?: NodeJS.ProcessEnv; timeout?: number } = {},
): string {
  const result = spawnSync(binary, ['--only', name], {
    encoding: 'utf8',
    timeout: options.timeout ?? 60_000,
    env: { ...process.env, ...options.env },
  });
  const output = `${result.stdout}\n${result.stderr}`;
  const skip = result.stdout.match(new RegExp(`^skip ${name}: (.*)$`, 'm'));
  if (skip && result.status === 0) ctx.skip(skip[1]);
  expect(result.stdout, output).toContain(`ok   ${name}`);
  expect(result.status, output).toBe(0);
  return output;
}
