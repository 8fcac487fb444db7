/**
 * The native core's own unit tests (native/tests: virtio transport, blk, console, a hostile
 * driver, ACPI tables), built by `npm ci` as build/Release/nodevisor_native_tests and run
 * here case by case, so each one counts in `npm test`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const binary = join(import.meta.dirname, '..', '..', 'build', 'Release', 'nodevisor_native_tests');

function listCases(): string[] {
  if (!existsSync(binary)) return [];
  return execFileSync(binary, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

const cases = listCases();

describe('native core unit tests', () => {
  it('are built by npm ci', () => {
    expect(existsSync(binary), `${binary} is missing: run \`npm ci\` (or \`npx node-gyp rebuild\`)`).toBe(true);
    expect(cases.length).toBeGreaterThan(20);
  });

  it.each(cases)('%s', (name) => {
    const run = spawnSync(binary, ['--only', name], { encoding: 'utf8', timeout: 60_000 });
    expect(run.stdout, run.stderr).toContain(`ok   ${name}`);
    expect(run.status).toBe(0);
  });
});
