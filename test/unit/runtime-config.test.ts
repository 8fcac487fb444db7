/** nodevisor-runtime's configuration.toml (Kata's key names) and its error log lines. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { configFilePath, loadConfig, parseConfigText } from '../../src/runtime/config.js';
import { formatLogLine } from '../../src/runtime/log.js';
import { tempDir } from '../helpers/tmp.js';

const FULL = `
[hypervisor.nodevisor]
kernel = "/usr/share/nodevisor/vmlinux"
initrd = "/usr/share/nodevisor/initrd.img"
kernel_params = "quiet agent.log=debug"
default_memory = 512
default_vcpus = 2
enable_debug = true

[factory]
enable_template = false
vm_cache_number = 2

[runtime]
isolation = "vm"
enable_tracing = true
disable_new_netns = false
`;

describe('configuration.toml', () => {
  it("reads Kata's keys into a RuntimeConfig", () => {
    const c = parseConfigText(FULL, '/etc/nodevisor/configuration.toml');
    expect(c.isolation).toBe('vm');
    expect(c.runtimeConfig).toEqual({
      hypervisorConfig: {
        kernelPath: '/usr/share/nodevisor/vmlinux',
        initrdPath: '/usr/share/nodevisor/initrd.img',
        kernelParams: [{ key: 'quiet', value: '' }, { key: 'agent.log', value: 'debug' }],
        memorySize: 512,
        numVCPUs: 2,
        debug: true,
      },
      factoryConfig: { template: false, vmCacheNumber: 2, vmCacheEndpoint: '' },
      trace: true,
      disableNewNetNs: false,
    });
    expect(c.stateRoot).toBe('/run/nodevisor/sandboxes');
  });

  it('needs no kernel for isolation "namespaces"', () => {
    const c = parseConfigText('[runtime]\nisolation = "namespaces"\nagent_path = "/opt/agent"\n', 'f');
    expect(c).toMatchObject({ isolation: 'namespaces', agentPath: '/opt/agent' });
  });

  it.each([
    ['[runtime]\nisolation = "vm"\n', 'isolation "vm" needs hypervisor.nodevisor.kernel'],
    ['[runtime]\nisolation = "lxc"\n', 'runtime.isolation must be one of vm, namespaces, not "lxc"'],
    ['[runtime]\nisolaton = "vm"\n', 'unknown key runtime.isolaton'],
    ['[hypervisor.qemu]\nkernel = "/k"\n', 'unknown hypervisor [hypervisor.qemu]'],
    ['[agent]\n', 'unknown table or key agent'],
    ['[hypervisor.nodevisor]\nkernel = "vmlinux"\n', 'hypervisor.nodevisor.kernel must be an absolute path'],
    ['[hypervisor.nodevisor]\nkernel = "/k"\ndefault_memory = -1\n', 'default_memory must be an integer from 0'],
    ['[runtime]\nenable_tracing = "yes"\n', 'runtime.enable_tracing must be true or false'],
    ['[hypervisor.nodevisor]\nkernel = "/k"\n[factory]\nenable_template = true\nvm_cache_number = 1\n', 'VM factory cannot work together with VM cache'],
    ['[runtime\n', 'invalid TOML at line 1'],
  ])('rejects %j', (text, message) => {
    expect(() => parseConfigText(text, '/c.toml')).toThrow(message);
    try {
      parseConfigText(text, '/c.toml');
    } catch (err) {
      expect((err as Error).message.startsWith('/c.toml: ')).toBe(true);
      expect((err as { code: string }).code).toBe('ECONFIG');
    }
  });

  it('is read from NODEVISOR_CONF_FILE; a missing named file is an error', async () => {
    const dir = tempDir();
    const file = join(dir, 'configuration.toml');
    writeFileSync(file, '[runtime]\nisolation = "namespaces"\n');
    expect(configFilePath({ NODEVISOR_CONF_FILE: file })).toEqual({ path: file, explicit: true });
    expect(configFilePath({})).toEqual({ path: '/etc/nodevisor/configuration.toml', explicit: false });
    expect(await loadConfig({ NODEVISOR_CONF_FILE: file })).toMatchObject({ path: file, isolation: 'namespaces' });
    await expect(loadConfig({ NODEVISOR_CONF_FILE: join(dir, 'missing.toml') })).rejects.toThrow('missing.toml: cannot read it');
  });
});

describe('error log lines', () => {
  it("are runc's JSON lines (what the runc shim reads) or logrus-style text", () => {
    const now = new Date('2026-11-30T05:00:00.000Z');
    expect(JSON.parse(formatLogLine('json', 'error', 'container c does not exist', now))).toEqual({
      level: 'error',
      msg: 'container c does not exist',
      time: '2026-11-30T05:00:00.000Z',
    });
    expect(formatLogLine('text', 'error', 'say "hi"', now)).toBe('time="2026-11-30T05:00:00.000Z" level=error msg="say \\"hi\\""\n');
  });
});
