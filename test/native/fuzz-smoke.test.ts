/**
 * A short fuzzing campaign on every target (native/fuzz: device models, the snapshot state file), plus their regression
 * inputs (test/fixtures/fuzz). Needs clang with libFuzzer (Debian: clang, libclang-rt-14-dev).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { needs, skipUnless } from '../helpers/needs.js';

const root = join(import.meta.dirname, '..', '..');
describe('fuzz targets (short campaign)', skipUnless('fuzz smoke campaign (libFuzzer needs clang++)', needs.command('clang++')), () => {
  it('build, pass their regression inputs and survive 5000 runs each', () => {
    const run = spawnSync('bash', [join(root, 'native', 'fuzz', 'run.sh'), '-runs=5000'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 600_000,
    });
    const output = `${run.stdout}\n${run.stderr}`;
    expect(output, output).not.toContain('found a crash');
    expect(output).not.toContain('FAILED on a regression input');
    const targets = readdirSync(join(root, 'native', 'fuzz')).filter((f) => f.endsWith('_fuzz.cc')).length;
    expect(output.match(/Done 5000 runs/g)?.length ?? 0, output).toBe(targets);
    expect(run.status, output).toBe(0);
  }, 600_000);
});
