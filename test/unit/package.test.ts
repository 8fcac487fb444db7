/**
 * nodevisor as its users get it: the built package imported by name (through its `exports`
 * map, by a separate Node process), and its emitted `.d.ts` compiled against a consumer.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

describe('the built package', () => {
  beforeAll(() => {
    // Build what `npm run build:ts` builds, so the test sees the current sources.
    execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'pipe' });
  }, 120_000);

  it('emits JS and .d.ts for the exports map', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      exports: { '.': { types: string; import: string } };
      bin: { nodevisor: string };
    };
    expect(existsSync(join(root, pkg.exports['.'].import))).toBe(true);
    expect(existsSync(join(root, pkg.exports['.'].types))).toBe(true);
    expect(existsSync(join(root, pkg.bin.nodevisor))).toBe(true);
  });

  it('is importable by its name and works', () => {
    const program = `
      import { getKernelParams, containerType, NodevisorError, nativeAddon } from 'nodevisor';
      const out = {
        params: getKernelParams(true, true).length,
        type: containerType({ annotations: { 'io.kubernetes.cri.container-type': 'container' } }),
        isError: new NodevisorError('x', { code: 'EINVAL' }) instanceof Error,
        version: nativeAddon().buildInfo().version,
      };
      console.log(JSON.stringify(out));
    `;
    const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', program], { cwd: root, encoding: 'utf8' });
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    expect(JSON.parse(stdout)).toEqual({ params: 4, type: 'pod_container', isError: true, version });
  });

  it('has type declarations a consumer compiles against', () => {
    const project = join(root, 'test', 'fixtures', 'consumer', 'tsconfig.json');
    expect(() => execFileSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'pipe' })).not.toThrow();
  }, 60_000);
});
