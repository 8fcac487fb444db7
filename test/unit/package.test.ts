/**
 * nodevisor as its users get it: the built package imported by name (through its `exports`
 * map, by a separate Node process), and its emitted `.d.ts` compiled against a consumer.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { tempDir } from '../helpers/tmp.js';

const root = join(import.meta.dirname, '..', '..');

/** Names src/index.ts no longer exports: the raw addon, the frame codec, probe constants, the logger object. */
const INTERNALS = [
  'nativeAddon',
  'addon',
  'logger',
  'rootLogger',
  'encodeFrame',
  'decodeFrame',
  'FrameDecoder',
  'MAX_FRAME_PAYLOAD',
  'ProbeCommand',
  'PROBE_BANNER',
  'PROBE_COUNTER_GPA',
  'PHASE_READY',
  'PHASE_STARTED',
  'withSpanSync',
  'asValidSpec',
];
/** Vm methods that moved to src/testing.ts (not part of the package). */
const TEST_ONLY_VM_METHODS = ['postWaitWord', 'debugReadGuest', 'debugSaveRestore'];
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

// dist/ is what `npm run build:ts` builds; test/setup/build-ts.ts brings it up to date before the run.
describe('the built package', () => {
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
      import { getKernelParams, containerType, NodevisorError, buildInfo } from 'nodevisor';
      const out = {
        params: getKernelParams(true, true).length,
        type: containerType({ annotations: { 'io.kubernetes.cri.container-type': 'container' } }),
        isError: new NodevisorError('x', { code: 'EINVAL' }) instanceof Error,
        version: buildInfo().version,
      };
      console.log(JSON.stringify(out));
    `;
    const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', program], { cwd: root, encoding: 'utf8' });
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    expect(JSON.parse(stdout)).toEqual({ params: 4, type: 'pod_container', isError: true, version });
  });

  it('exports what a user needs, not the internals', () => {
    const program = `
      import * as nodevisor from 'nodevisor';
      const vm = nodevisor.Vm.prototype;
      const testing = await import('nodevisor/dist/src/testing.js').then(() => 'imported', (e) => e.code);
      console.log(JSON.stringify({
        names: Object.keys(nodevisor),
        vmMethods: Object.getOwnPropertyNames(vm),
        testing,
      }));
    `;
    const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', program], { cwd: root, encoding: 'utf8' });
    const { names, vmMethods, testing } = JSON.parse(stdout) as { names: string[]; vmMethods: string[]; testing: string };
    expect(testing).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
    expect(names).toEqual(expect.arrayContaining(['buildInfo', 'setLogger', 'Vm', 'AgentClient', 'probeGuestPath', 'NodevisorError']));
    for (const internal of INTERNALS) expect(names).not.toContain(internal);
    expect(vmMethods).toEqual(expect.arrayContaining(['start', 'stop', 'attachDisk']));
    for (const testOnly of TEST_ONLY_VM_METHODS) expect(vmMethods).not.toContain(testOnly);
  });

  it('has type declarations a consumer compiles against', () => {
    const project = join(root, 'test', 'fixtures', 'consumer', 'tsconfig.json');
    expect(() => execFileSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'pipe' })).not.toThrow();
  }, 60_000);

  it('says which addon paths it tried, and how to build, when the binary is missing', () => {
    // A copy of the installed package without its build/ directory.
    const copy = tempDir();
    cpSync(join(root, 'dist'), join(copy, 'dist'), { recursive: true });
    for (const f of ['package.json', 'binding.gyp']) cpSync(join(root, f), join(copy, f));
    symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));
    const garbage = join(copy, 'garbage.node');
    writeFileSync(garbage, 'not an ELF');
    const program = `
      import { buildInfo } from 'nodevisor';
      try { buildInfo(); console.log('loaded'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', program], {
      cwd: copy,
      encoding: 'utf8',
      env: { ...process.env, NODEVISOR_ADDON: garbage },
    });
    const err = JSON.parse(out) as { code: string; message: string };
    expect(err.code).toBe('ENOADDON');
    expect(err.message).toContain(`${garbage} (`);
    expect(err.message).toContain(`${join(copy, 'build', 'Release', 'nodevisor.node')} (missing)`);
    expect(err.message).toContain('npm run build');
  });
});
