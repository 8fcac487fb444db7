/**
 * The native core's unit tests (native/tests) under ThreadSanitizer: device workers, register
 * accesses from "vCPU" threads and host calls run concurrently there, and every data race is
 * a failure. The binary is built here, into build-tsan/ (CMakeLists.txt, NODEVISOR_TSAN_TESTS),
 * when it is missing or stale — ninja rebuilds only what changed — so `npm ci` does not pay
 * for it. Each case runs on its own, like test/native/native-core.test.ts.
 *
 * Races with the guest are the point of guest memory (the driver and the device share it; the
 * rings' indexes order them): native/tests/tsan.supp suppresses those, and only those.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { needs } from '../helpers/needs.js';

const root = join(import.meta.dirname, '..', '..');
const buildDir = join(root, 'build-tsan');
const binary = join(buildDir, 'nodevisor_native_tests_tsan');
const tools = needs.command('cmake').ok ? needs.command('ninja') : needs.command('cmake');

/** The TEST(name) cases in native/tests, read from the sources (the binary may not exist yet). */
function caseNames(): string[] {
  const dir = join(root, 'native', 'tests');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cc'))
    .flatMap((f) => [...readFileSync(join(dir, f), 'utf8').matchAll(/^TEST\((\w+)\)/gm)].map((m) => m[1] as string));
}

describe.skipIf(!tools.report('native unit tests under ThreadSanitizer (cmake and ninja)'))('native core unit tests (ThreadSanitizer)', () => {
  beforeAll(() => {
    if (!existsSync(join(buildDir, 'build.ninja'))) {
      execFileSync('cmake', ['-S', root, '-B', buildDir, '-G', 'Ninja', '-DNODEVISOR_TSAN_TESTS=ON'], { stdio: 'pipe' });
    }
    execFileSync('ninja', ['-C', buildDir, 'nodevisor_native_tests_tsan'], { stdio: 'pipe', timeout: 1_500_000 });
  }, 1_600_000);

  it.each(caseNames())('%s', (name) => {
    const run = spawnSync(binary, ['--only', name], {
      encoding: 'utf8',
      timeout: 180_000,
      env: {
        ...process.env,
        NODEVISOR_TEST_TIME_SCALE: '4',
        TSAN_OPTIONS: `halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=${join(root, 'native', 'tests', 'tsan.supp')}`,
      },
    });
    const output = `${run.stdout}\n${run.stderr}`;
    expect(output, output).not.toContain('ThreadSanitizer');
    expect(run.stdout, output).toContain(`ok   ${name}`);
    expect(run.status, output).toBe(0);
  }, 200_000);
});
