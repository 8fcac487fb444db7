/**
 * Tier 3 (KVM, the probe guest): sandboxes with isolation 'vm', their VMs booted directly or
 * taken from the VM factory handleFactory set. The probe serves part of the agent protocol: it
 * answers ping and disk.checksum but refuses storage.mount (ENOTSUP), so here the VM backend is
 * checked up to the disk (the guest reads the hot-plugged rootfs the host sees) and the refused
 * mount must be a clean failure: no netns, VM thread, mapping or state left.
 *
 * The same flow with the Linux guest (the agent mounts the disk and runs busybox) needs
 * hardware KVM: tier 5, skipped on kvm_pvm with its reason.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';

import { NodevisorError } from '../../src/errors.js';
import { buildGuestImage } from '../../src/guest/image/build.js';
import { probeGuestPath } from '../../src/guest/probe.js';
import { ContainerIdMapping, DEFAULT_MAPPING_ROOT } from '../../src/mapping/container-id-mapping.js';
import type { Spec } from '../../src/oci/spec.js';
import { createSandbox, DEFAULT_SANDBOX_STATE_ROOT } from '../../src/sandbox/index.js';
import { factoryVmProvider, setSandboxVmProvider, startVmBackend } from '../../src/sandbox/vm-backend.js';
import { handleFactory } from '../../src/factory/index.js';
import { clearCurrentFactory, currentFactory } from '../../src/factory/handle-factory.js';
import { validateSpec } from '../../src/oci/validate.js';
import { busyboxRootfsNeed, makeBusyboxImage } from '../helpers/busybox-rootfs.js';
import { need, needs, skipUnless } from '../helpers/needs.js';
import { busyboxSpec, backToBefore, hostState, netnsInodeHook, netnsMountsOf, recordedInode, runtimeConfig, settled } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/tmp.js';

const what = "sandboxes with isolation 'vm' and the probe guest";
const cli = resolve(import.meta.dirname, '../../dist/src/cli/main.js');
const cliBuilt = need(existsSync(cli), `${cli} is not built (npx tsc -p tsconfig.build.json)`);

describe(what, skipUnless(what, needs.kvm, needs.root, needs.command('losetup'), busyboxRootfsNeed()), () => {
  let work: string;
  let image: string;
  let stateRoot: string;
  let mapping: ContainerIdMapping;
  const state = () => hostState({ image, stateRoot, mappingRoot: mapping.root, workDir: work });

  beforeAll(() => {
    work = tempDir('nodevisor-sandbox-vm-');
    image = makeBusyboxImage(work);
    stateRoot = join(work, 'state');
    mapping = new ContainerIdMapping(join(work, 'mapping'));
  });

  it("hot-plugs the rootfs with the container id as serial: the guest's checksum of it matches the host's", async () => {
    const backend = await startVmBackend({
      sandboxId: 'probe-disk',
      netNsPath: '',
      hypervisorConfig: { kernelPath: probeGuestPath(), kernelParams: [] },
      spec: validateSpec(busyboxSpec(['true'])),
      stateDir: join(work, 'unused'),
    });
    try {
      const disk = await backend.attachDisk('ctr-probe', image, true);
      expect(disk.locator).toEqual({ serial: 'ctr-probe' });
      const length = 256 * 1024;
      const host = crc32(readFileSync(image).subarray(0, length));
      expect(await backend.agent.diskChecksum('ctr-probe', 0, length)).toBe(host);
      await disk.release();
      await expect(backend.agent.diskChecksum('ctr-probe', 0, 512)).rejects.toBeInstanceOf(NodevisorError);
    } finally {
      await backend.stop();
    }
  });

  async function failingSandbox(id: string, change: { kernelPath?: string; spec?: Spec }): Promise<NodevisorError> {
    return createSandbox({
      spec: change.spec ?? busyboxSpec(['true']),
      runtimeConfig: runtimeConfig(change.kernelPath ?? probeGuestPath()),
      rootFs: { source: image, type: 'ext4', options: ['ro'], mounted: false },
      containerId: id,
      bundlePath: work,
      isolation: 'vm',
      mapping,
      stateRoot,
    }).then(
      () => {
        throw new Error(`createSandbox ${id} succeeded with the probe guest`);
      },
      (e: unknown) => e as NodevisorError,
    );
  }

  it("the probe's refusal of storage.mount is a clean failure: no netns, VM thread, mapping or state left", async () => {
    await failingSandbox('warm-up', {}); // lazily made threads (libuv's pool) exist before counting
    const before = state();
    const file = join(work, 'hook-mount');
    const err = await failingSandbox('probe-mount', { spec: busyboxSpec(['true'], { hooks: { prestart: [netnsInodeHook(file)] } }) });
    expect(err.message).toMatch(/^createSandbox: create the container: container probe-mount: mount the rootfs in the agent: agent storage.mount/);
    expect(err.cause).toBeInstanceOf(NodevisorError);
    expect(err.code).toBe('ENOTSUP'); // the probe serves ping, echo and disk.checksum only
    expect(netnsMountsOf(recordedInode(file))).toEqual([]);
    expect(await backToBefore(state, before)).toEqual(before);
  });

  it('a VM that cannot start fails at the backend and leaves nothing', async () => {
    const before = state();
    const file = join(work, 'hook-boot');
    const err = await failingSandbox('no-boot', {
      kernelPath: join(work, 'tree/etc/marker'), // not a kernel
      spec: busyboxSpec(['true'], { hooks: { prestart: [netnsInodeHook(file)] } }),
    });
    expect(err.message).toMatch(/^createSandbox: start the vm backend: /);
    expect(netnsMountsOf(recordedInode(file))).toEqual([]);
    expect(await backToBefore(state, before)).toEqual(before);
  });

  it('takes its VM from the factory handleFactory set (a pool of probe VMs): the guest sees the rootfs, the refused mount is clean', async () => {
    const config = runtimeConfig(probeGuestPath());
    config.hypervisorConfig.hotplugSlots = 2; // the factory's VMs need a slot for the rootfs
    config.factoryConfig = { template: false, vmCacheNumber: 1, vmCacheEndpoint: '' };
    await handleFactory(undefined, config);
    const factory = currentFactory();
    expect(factory).toBeDefined();
    const taken: string[] = [];
    const getVm = factory!.getVm.bind(factory);
    factory!.getVm = async (requested) => {
      const vm = await getVm(requested);
      taken.push(vm.id);
      return vm;
    };
    try {
      // The backend's VM is the factory's, and the guest reads the hot-plugged rootfs the host sees.
      const backend = await startVmBackend({
        sandboxId: 'factory-disk',
        netNsPath: '',
        hypervisorConfig: config.hypervisorConfig,
        spec: validateSpec(busyboxSpec(['true'])),
        stateDir: join(work, 'unused'),
      });
      try {
        expect(taken).toHaveLength(1);
        await backend.attachDisk('ctr-factory', image, true);
        const length = 128 * 1024;
        expect(await backend.agent.diskChecksum('ctr-factory', 0, length)).toBe(crc32(readFileSync(image).subarray(0, length)));
      } finally {
        await backend.stop();
      }

      const before = state();
      const err = await createSandbox({
        spec: busyboxSpec(['true']),
        runtimeConfig: config,
        rootFs: { source: image, type: 'ext4', options: ['ro'], mounted: false },
        containerId: 'from-factory',
        bundlePath: work,
        mapping,
        stateRoot,
      }).then(
        () => new Error('createSandbox succeeded with the probe guest'),
        (e: unknown) => e as NodevisorError,
      );
      expect(err.message).toMatch(/^createSandbox: create the container: container from-factory: mount the rootfs in the agent/);
      expect(taken).toHaveLength(2);
      // The taken VM is stopped; the pool made a replacement (as many VM threads as before).
      expect(await backToBefore(state, before)).toEqual(before);
    } finally {
      await clearCurrentFactory()?.close();
    }
  });

  it('factoryVmProvider: a getter that finds no factory boots directly; a handle without a Vm is refused cleanly', async () => {
    const before = state();
    try {
      setSandboxVmProvider(factoryVmProvider(() => undefined));
      const direct = await failingSandbox('no-factory', {});
      expect(direct.code).toBe('ENOTSUP'); // it got as far as the probe's answer to storage.mount
      setSandboxVmProvider(factoryVmProvider({ getVm: async () => ({ id: 'not-a-handle' }) }));
      const bad = await failingSandbox('bad-factory', {});
      expect(bad.message).toMatch(/^createSandbox: start the vm backend: the VM factory handed over a VM without a Vm/);
      expect(await backToBefore(state, before)).toEqual(before);
    } finally {
      setSandboxVmProvider(undefined);
    }
  });

  it(
    'nodevisor run --isolation vm with the probe guest exits 1 naming the refused mount, and leaves nothing',
    skipUnless('nodevisor run --isolation vm', cliBuilt),
    async () => {
      const bundle = join(work, 'cli-bundle');
      mkdirSync(bundle, { recursive: true });
      const hook = join(work, 'cli-hook');
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(busyboxSpec(['true'], { hooks: { prestart: [netnsInodeHook(hook)] } })));
      const id = `cli-vm-${process.pid}`;
      const child = spawn(process.execPath, [cli, 'run', '--bundle', bundle, '--isolation', 'vm', '--kernel', probeGuestPath(), '--rootfs-device', image, id], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      expect(code).toBe(1);
      expect(stderr).toMatch(/createSandbox: create the container: container cli-vm-\d+: mount the rootfs in the agent: agent storage.mount/);
      expect(netnsMountsOf(recordedInode(hook))).toEqual([]);
      expect(existsSync(join(DEFAULT_MAPPING_ROOT, id))).toBe(false);
      expect(existsSync(join(DEFAULT_SANDBOX_STATE_ROOT, id))).toBe(false);
    },
  );

  it('a host-mounted rootfs is refused for a VM (no shared filesystem), cleanly', async () => {
    const before = state();
    const err = await createSandbox({
      spec: busyboxSpec(['true']),
      runtimeConfig: runtimeConfig(probeGuestPath()),
      rootFs: { mounted: true, target: join(work, 'tree') },
      containerId: 'host-mounted',
      bundlePath: work,
      mapping,
      stateRoot,
    }).catch((e: unknown) => e as NodevisorError);
    expect((err as NodevisorError).code).toBe('ENOTSUP');
    expect(await backToBefore(state, before)).toEqual(before);
  });
});

const linuxWhat = "a sandbox with isolation 'vm' and the Linux guest (tier 5)";

describe(linuxWhat, skipUnless(linuxWhat, needs.hardwareKvm, needs.root, busyboxRootfsNeed()), () => {
  it("runs sh -c 'echo hi; exit 3' from a hot-plugged ext4 image in the guest", async () => {
    const guest = await buildGuestImage({ progress: (line) => console.log(`guest build: ${line}`) });
    if (!guest.vmlinux) throw new Error(`guest build unpacked no vmlinux from ${guest.kernel} (is lz4 installed?)`);
    const work = tempDir('nodevisor-sandbox-linux-');
    const image = makeBusyboxImage(work);
    const config = runtimeConfig(guest.vmlinux);
    config.hypervisorConfig = { ...config.hypervisorConfig, initrdPath: guest.initrd, memorySize: 256, kernelParams: [{ key: 'console', value: 'ttyS0' }] };
    const { sandbox } = await createSandbox({
      spec: busyboxSpec(['sh', '-c', 'echo hi; exit 3']),
      runtimeConfig: config,
      rootFs: { source: image, type: 'ext4', options: ['ro'], mounted: false },
      containerId: 'linux-echo',
      bundlePath: work,
      mapping: new ContainerIdMapping(join(work, 'mapping')),
      stateRoot: join(work, 'state'),
    });
    try {
      const chunks: Buffer[] = [];
      sandbox.stdio('linux-echo').stdout.on('data', (c: Buffer) => chunks.push(c));
      await sandbox.startContainer('linux-echo');
      expect(await sandbox.wait('linux-echo')).toEqual({ exitCode: 3, signal: null });
      expect(Buffer.concat(chunks).toString()).toBe('hi\n');
    } finally {
      await sandbox.delete();
    }
  }, 180_000);
});
