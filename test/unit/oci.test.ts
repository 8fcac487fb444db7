import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import type { RuntimeConfig } from '../../src/config/types.js';
import { NodevisorError } from '../../src/errors.js';
import { containerType, sandboxId } from '../../src/oci/annotations.js';
import { normalizeCapabilities } from '../../src/oci/capabilities.js';
import { containerConfig, parseEnv } from '../../src/oci/container-config.js';
import { validateId } from '../../src/oci/ids.js';
import { lineAndColumn, parseConfigJson } from '../../src/oci/parse.js';
import { DEFAULT_SHM_SIZE, sandboxConfig } from '../../src/oci/sandbox-config.js';
import type { Spec } from '../../src/oci/spec.js';
import { validateSpec } from '../../src/oci/validate.js';
import { minimalSpec } from '../helpers/spec.js';
import { tempDir } from '../helpers/tmp.js';

const runtime: RuntimeConfig = {
  hypervisorConfig: { kernelPath: '/k', kernelParams: [{ key: 'quiet', value: '' }], memorySize: 256 },
  factoryConfig: { template: false, vmCacheNumber: 0, vmCacheEndpoint: '' },
  trace: false,
  disableNewNetNs: false,
  disableGuestSeccomp: true,
};

function bundleWith(content: string): string {
  const dir = tempDir();
  writeFileSync(join(dir, 'config.json'), content);
  return dir;
}

describe('validateId', () => {
  it('accepts ids that are safe path components', () => {
    for (const id of ['a', 'A0', 'pod-1_x.y', '9']) expect(validateId(id)).toBe(id);
  });

  it.each([
    ['..', /must match/],
    ['.hidden', /must match/],
    ['a/b', /must match/],
    ['-x', /must match/],
    ['a b', /must match/],
    ['x'.repeat(201), /longer than 200/],
  ])('rejects %j', (id, re) => {
    expect(() => validateId(id, 'container ID')).toThrow(re);
  });

  it('says what is missing', () => {
    expect(() => validateId('', 'sandbox ID')).toThrow('Missing sandbox ID');
    expect(() => validateId(undefined, 'container ID')).toThrow('Missing container ID');
  });
});

describe('parseConfigJson', () => {
  it('reads a valid bundle and converts legacy capabilities', async () => {
    const spec = minimalSpec();
    spec.process!.capabilities = ['CAP_CHOWN', 'CAP_KILL'];
    const spec2 = await parseConfigJson(bundleWith(JSON.stringify(spec)));
    expect(spec2.process.args).toEqual(['/bin/sh', '-c', 'echo hi']);
    expect(spec2.process.capabilities).toEqual({
      bounding: ['CAP_CHOWN', 'CAP_KILL'],
      effective: ['CAP_CHOWN', 'CAP_KILL'],
      inheritable: ['CAP_CHOWN', 'CAP_KILL'],
      permitted: ['CAP_CHOWN', 'CAP_KILL'],
      ambient: ['CAP_CHOWN', 'CAP_KILL'],
    });
  });

  it('names a missing file', async () => {
    const dir = tempDir();
    await expect(parseConfigJson(dir)).rejects.toMatchObject({
      code: 'ENOENT',
      path: join(dir, 'config.json'),
      message: expect.stringContaining(`cannot read ${join(dir, 'config.json')}`),
    });
  });

  it('reads a directory as config.json as a clear error', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'config.json'));
    await expect(parseConfigJson(dir)).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('gives the line and column of invalid JSON', async () => {
    const dir = bundleWith('{\n  "ociVersion": "1.0.2",\n  "process": }\n');
    await expect(parseConfigJson(dir)).rejects.toThrow(/invalid JSON at line 3, column 14/);
  });

  it('gives a position for truncated JSON too', async () => {
    const dir = bundleWith('{\n "a": [1,');
    await expect(parseConfigJson(dir)).rejects.toThrow(/invalid JSON at line 2, column 10/);
  });

  it.each(['process', 'root', 'linux'])('rejects a spec without %s', async (section) => {
    const spec = minimalSpec() as Record<string, unknown>;
    delete spec[section];
    const dir = bundleWith(JSON.stringify(spec));
    await expect(parseConfigJson(dir)).rejects.toThrow(`has no "${section}" section`);
  });

  it('names a mistyped field', async () => {
    const spec = minimalSpec();
    (spec.process!.user as { uid: unknown }).uid = 'root';
    await expect(parseConfigJson(bundleWith(JSON.stringify(spec)))).rejects.toThrow(
      /process\.user\.uid must be an integer from 0 to 4294967295, got string "root"/,
    );
  });

  it('rejects an empty bundle path', async () => {
    await expect(parseConfigJson('')).rejects.toThrow('bundle path must be specified');
  });
});

describe('lineAndColumn', () => {
  it('counts from 1', () => {
    expect(lineAndColumn('ab\ncd', 0)).toEqual({ line: 1, column: 1 });
    expect(lineAndColumn('ab\ncd', 4)).toEqual({ line: 2, column: 2 });
  });
});

describe('validateSpec', () => {
  it('rejects a hook with a relative path and a non-positive timeout', () => {
    const spec = minimalSpec();
    spec.hooks = { prestart: [{ path: 'hook.sh' }] };
    expect(() => validateSpec(spec)).toThrow(/hooks\.prestart\[0\]\.path must be an absolute path/);
    spec.hooks = { prestart: [{ path: '/bin/true', timeout: 0 }] };
    expect(() => validateSpec(spec)).toThrow(/timeout must be a whole number of seconds greater than 0/);
  });

  it('rejects env entries without a name', () => {
    const spec = minimalSpec();
    spec.process!.env = ['=x'];
    expect(() => validateSpec(spec)).toThrow(/process\.env\[0\] "=x" has an empty variable name/);
    spec.process!.env = ['NOEQUALS'];
    expect(() => validateSpec(spec)).toThrow(/not of the form NAME=value/);
  });

  it('rejects a relative cwd and empty args', () => {
    const spec = minimalSpec();
    spec.process!.cwd = 'tmp';
    expect(() => validateSpec(spec)).toThrow(/process\.cwd must be an absolute path/);
    const spec2 = minimalSpec();
    spec2.process!.args = [];
    expect(() => validateSpec(spec2)).toThrow(/at least one entry/);
  });

  it('rejects a non-object', () => {
    expect(() => validateSpec([])).toThrow('spec must be an object, got an array');
    expect(() => validateSpec(null)).toThrow('spec must be an object, got null');
  });
});

describe('containerConfig', () => {
  it('converts a spec as Kata does', () => {
    const spec = minimalSpec();
    spec.process!.capabilities = { bounding: ['CAP_KILL'], effective: ['CAP_KILL'] };
    spec.linux!.devices = [{ type: 'c', path: '/dev/fuse', major: 10, minor: 229, fileMode: 0o666 }];
    spec.linux!.resources = { memory: { limit: 1 << 20 } };
    const cc = containerConfig(spec, { bundlePath: '/b/bundle', containerId: 'c1', console: '/dev/pts/3', detach: true });
    expect(cc.id).toBe('c1');
    expect(cc.rootFs).toEqual({ target: '/b/bundle/rootfs', mounted: true });
    expect(cc.readonlyRootfs).toBe(true);
    expect(cc.cmd).toEqual({
      args: ['/bin/sh', '-c', 'echo hi'],
      envs: [
        { name: 'PATH', value: '/usr/bin:/bin' },
        { name: 'A', value: 'b=c' },
      ],
      workDir: '/',
      user: '1000',
      primaryGroup: '1001',
      supplementaryGroups: ['5', '6'],
      interactive: false,
      console: '/dev/pts/3',
      detach: true,
      noNewPrivileges: true,
      capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], inheritable: [], permitted: [], ambient: [] },
    });
    expect(cc.deviceInfos).toEqual([
      { containerPath: '/dev/fuse', devType: 'c', major: 10, minor: 229, uid: 0, gid: 0, fileMode: 0o666 },
    ]);
    expect(cc.resources).toEqual({ memory: { limit: 1 << 20 } });
    expect(cc.containerType).toBe('pod_sandbox');
    expect(cc.mounts).toEqual([{ destination: '/proc', type: 'proc', source: 'proc', options: [] }]);
  });

  it('keeps an absolute root path and cleans it', () => {
    const spec = minimalSpec();
    spec.root = { path: '/srv//roots/../rootfs' };
    expect(containerConfig(spec, { bundlePath: '/b', containerId: 'c' }).rootFs).toEqual({ target: '/srv/rootfs', mounted: true });
  });

  it('does not change the spec it was given', () => {
    const spec = minimalSpec();
    const before = structuredClone(spec);
    const cc = containerConfig(spec, { bundlePath: '/b', containerId: 'c' });
    cc.spec.process.args!.push('x');
    cc.mounts[0]!.options!.push('ro');
    expect(spec).toEqual(before);
  });

  it('rejects bad devices with Kata\'s texts', () => {
    const spec = minimalSpec();
    spec.linux!.devices = [{ type: 'x', path: '/dev/x', major: 1, minor: 1 }];
    expect(() => containerConfig(spec, { bundlePath: '/b', containerId: 'c' })).toThrow('Unexpected Device Type x for device /dev/x');
    spec.linux!.devices = [{ type: 'c', path: '', major: 1, minor: 1 }];
    expect(() => containerConfig(spec, { bundlePath: '/b', containerId: 'c' })).toThrow('Path cannot be empty for device');
    spec.linux!.devices = [{ type: 'b', path: '/dev/vdb' }];
    expect(() => containerConfig(spec, { bundlePath: '/b', containerId: 'c' })).toThrow(/needs a non-negative integer major/);
    spec.linux!.devices = [{ type: 'p', path: '/dev/fifo' }];
    expect(containerConfig(spec, { bundlePath: '/b', containerId: 'c' }).deviceInfos[0]!.devType).toBe('p');
  });

  it('rejects a spec missing a section instead of crashing', () => {
    const spec = minimalSpec();
    delete spec.linux;
    expect(() => containerConfig(spec, { bundlePath: '/b', containerId: 'c' })).toThrow(NodevisorError);
    expect(() => containerConfig(spec, { bundlePath: '/b', containerId: 'c' })).toThrow(/no "linux" section/);
  });

  it('rejects an invalid container id and an empty bundle', () => {
    expect(() => containerConfig(minimalSpec(), { bundlePath: '/b', containerId: '../etc' })).toThrow(/invalid container ID/);
    expect(() => containerConfig(minimalSpec(), { bundlePath: '', containerId: 'c' })).toThrow(/bundle path/);
  });

  it('reports an unknown container type', () => {
    const spec = minimalSpec();
    spec.annotations = { 'io.kubernetes.cri.container-type': 'vm' };
    expect(() => containerConfig(spec, { bundlePath: '/b', containerId: 'c' })).toThrow('Unknown container type vm');
  });
});

describe('parseEnv', () => {
  it('splits at the first =', () => {
    expect(parseEnv(['A=b=c', 'E=', 'X=1'])).toEqual([
      { name: 'A', value: 'b=c' },
      { name: 'E', value: '' },
      { name: 'X', value: '1' },
    ]);
  });
});

describe('normalizeCapabilities', () => {
  it('handles null and partial objects', () => {
    expect(normalizeCapabilities(null)).toEqual({ bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] });
    expect(normalizeCapabilities({ permitted: ['CAP_A'] }).permitted).toEqual(['CAP_A']);
  });
});

describe('containerType and sandboxId', () => {
  const withAnn = (annotations: Record<string, string>): Spec => ({ ...minimalSpec(), annotations });

  it('defaults to a sandbox', () => {
    expect(containerType(minimalSpec())).toBe('pod_sandbox');
  });

  it.each([
    ['io.kubernetes.cri.container-type', 'sandbox', 'pod_sandbox'],
    ['io.kubernetes.cri.container-type', 'container', 'pod_container'],
    ['io.kubernetes.cri-o.ContainerType', 'podsandbox', 'pod_sandbox'],
    ['io.kubernetes.docker.type', 'container', 'pod_container'],
  ])('%s=%s is %s', (key, value, type) => {
    expect(containerType(withAnn({ [key]: value }))).toBe(type);
  });

  it('lets the first key present decide', () => {
    expect(
      containerType(withAnn({ 'io.kubernetes.cri-o.ContainerType': 'sandbox', 'io.kubernetes.cri.container-type': 'container' })),
    ).toBe('pod_container');
    expect(() =>
      containerType(withAnn({ 'io.kubernetes.cri.container-type': 'bogus', 'io.kubernetes.docker.type': 'container' })),
    ).toThrow('Unknown container type bogus');
  });

  it('finds the sandbox id by Kata\'s keys in order', () => {
    expect(sandboxId(withAnn({ 'io.kubernetes.sandbox.id': 's3', 'io.kubernetes.cri-o.SandboxID': 's2' }))).toBe('s2');
    expect(sandboxId(withAnn({ 'io.kubernetes.cri.sandbox-id': 's1', 'io.kubernetes.sandbox.id': 's3' }))).toBe('s1');
    expect(() => sandboxId(minimalSpec())).toThrow('Could not find sandbox ID');
    expect(() => sandboxId(withAnn({ 'io.kubernetes.cri.sandbox-id': '../x' }))).toThrow(/invalid sandbox ID/);
  });
});

describe('sandboxConfig', () => {
  it('builds the sandbox with its one container', async () => {
    const spec = minimalSpec();
    spec.linux!.namespaces = [
      { type: 'network', path: '/run/netns/first' },
      { type: 'pid' },
      { type: 'network', path: '/run/netns/last' },
      { type: 'network', path: '' },
    ];
    spec.annotations = {
      'com.github.containers.virtcontainers.KernelPath': '/boot/other',
      'unrelated.key': 'x',
    };
    const sc = await sandboxConfig(spec, runtime, { bundlePath: '/b', containerId: 'sb1', systemdCgroup: true });
    expect(sc.id).toBe('sb1');
    expect(sc.hostname).toBe('box');
    expect(sc.networkConfig).toEqual({ netNsPath: '/run/netns/last', netNsCreated: false, disableNewNetNs: false });
    expect(sc.containers).toHaveLength(1);
    expect(sc.containers[0]!.id).toBe('sb1');
    expect(sc.shmSize).toBe(0);
    expect(sc.systemdCgroup).toBe(true);
    expect(sc.disableGuestSeccomp).toBe(true);
    expect(sc.hypervisorConfig).toEqual(runtime.hypervisorConfig);
    expect(sc.hypervisorConfig).not.toBe(runtime.hypervisorConfig);
    expect(sc.assetAnnotations).toEqual({ 'com.github.containers.virtcontainers.KernelPath': '/boot/other' });
  });

  it('sizes /dev/shm: default, host /dev/shm, and a bind source measured by statfs', async () => {
    const spec = minimalSpec();
    spec.mounts = [{ destination: '/dev/shm', type: 'tmpfs', source: 'shm' }];
    expect((await sandboxConfig(spec, runtime, { bundlePath: '/b', containerId: 's' })).shmSize).toBe(DEFAULT_SHM_SIZE);
    spec.mounts = [{ destination: '/dev/shm', type: 'bind', source: '/dev/shm' }];
    expect((await sandboxConfig(spec, runtime, { bundlePath: '/b', containerId: 's' })).shmSize).toBe(DEFAULT_SHM_SIZE);
    const dir = tempDir();
    spec.mounts = [{ destination: '/dev/shm', type: 'bind', source: dir }];
    const size = (await sandboxConfig(spec, runtime, { bundlePath: '/b', containerId: 's' })).shmSize;
    const { statfsSync } = await import('node:fs');
    const st = statfsSync(dir);
    expect(size).toBe(st.bsize * st.blocks);
    spec.mounts = [{ destination: '/dev/shm', type: 'bind', source: join(dir, 'missing') }];
    await expect(sandboxConfig(spec, runtime, { bundlePath: '/b', containerId: 's' })).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('takes disableNewNetNs from the runtime config', async () => {
    const sc = await sandboxConfig(minimalSpec(), { ...runtime, disableNewNetNs: true }, { bundlePath: '/b', containerId: 's' });
    expect(sc.networkConfig).toEqual({ netNsPath: '', netNsCreated: false, disableNewNetNs: true });
  });
});
