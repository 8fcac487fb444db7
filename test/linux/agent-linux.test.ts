/**
 * Tier 5 (DESIGN §6): Debian's cloud kernel boots with the initramfs of `nodevisor guest build`;
 * the agent, as PID 1, answers over the virtio-console channel (`vm.agent`), mounts a hot-plugged
 * ext4 disk found by its serial, and runs a container from it.
 *
 * Needs hardware-virtualized KVM: on kvm_pvm a stock kernel runs emulated and stops early, so
 * this file is skipped there with the reason. Uses the Vm API of DESIGN §2:
 * `Vm.create({kernel, initrd, cmdline, memoryMiB, hotplugSlots})`, `vm.agent`,
 * `vm.attachDisk({path, readOnly, serial})`. The kernel is the ELF (PVH entry) unpacked from
 * Debian's bzImage by `nodevisor guest build`; the virtio-mmio devices are found through ACPI
 * (the cloud kernel has no CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES).
 */
import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AgentClient } from '../../src/agent/client.js';
import type { ExitEvent, StdioEvent } from '../../src/agent/messages.js';
import { buildGuestImage, type GuestImage } from '../../src/guest/image/build.js';
import { Vm } from '../../src/vm/vm.js';
import { busyboxRootfsNeed, makeBusyboxImage, ROOTFS_MARKER } from '../helpers/busybox-rootfs.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

const canRun = skipUnless('Linux guest + agent end to end (tier 5)', needs.hardwareKvm, busyboxRootfsNeed());

describe('Linux guest with the nodevisor agent (hardware KVM)', canRun, () => {
  let image: GuestImage;
  let disk: string;
  let vm: Vm;
  let client: AgentClient;
  let consoleLog = '';
  const stdio: StdioEvent[] = [];
  const exits: ExitEvent[] = [];

  beforeAll(async () => {
    image = await buildGuestImage({ progress: (line) => console.log(`guest build: ${line}`) });
    disk = makeBusyboxImage(tempDir('nodevisor-linux-'));
    // nodevisor boots ELF kernels through their PVH entry: the vmlinux unpacked from Debian's bzImage.
    if (!image.vmlinux) throw new Error(`guest build unpacked no vmlinux from ${image.kernel} (is lz4 installed?)`);
    vm = await Vm.create({
      kernel: image.vmlinux,
      initrd: image.initrd,
      cmdline: 'console=ttyS0 panic=-1 quiet',
      memoryMiB: 256,
      hotplugSlots: 2,
    });
    vm.on('console', (data) => (consoleLog += data.toString()));
    await vm.start();
    client = new AgentClient(vm.agent, { timeoutMs: 30_000 });
    client.on('stdio', (e) => stdio.push(e));
    client.on('exit', (e) => exits.push(e));
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await vm?.stop();
  });

  it('boots to the agent, which answers ping as PID 1', async () => {
    const pong = await client.ping().catch((err: Error) => {
      throw new Error(`${err.message}\n--- guest console ---\n${consoleLog.slice(-4000)}`);
    });
    expect(pong).toEqual({ agent: 'nodevisor-agent', version: 1, pid: 1 });
  });

  it('syncs time and reseeds the RNG', async () => {
    await client.timeSync(new Date());
    await client.rngReseed(Buffer.alloc(32, 1));
  });

  it('mounts a hot-plugged ext4 disk by serial and checksums it like the host', async () => {
    await vm.attachDisk({ path: disk, readOnly: true, serial: 'ctr-linux-1' });
    const mounted = await client.mountStorage({
      serial: 'ctr-linux-1',
      fstype: 'ext4',
      options: ['ro'],
      mountPoint: '/run/nodevisor/containers/ctr-linux-1',
      timeoutMs: 10_000,
    });
    expect(mounted.device).toMatch(/^\/dev\/vd[a-z]+$/);
    const expected = crc32(readFileSync(disk).subarray(1024, 1024 + 65536));
    expect(await client.diskChecksum('ctr-linux-1', 1024, 65536)).toBe(expected);
  });

  it('runs a container from that disk: output and exit code arrive', async () => {
    const c = { containerId: 'ctr-linux-1' };
    await client.createContainer({
      ...c,
      rootfs: '/run/nodevisor/containers/ctr-linux-1',
      process: { args: ['sh', '-c', 'echo $X; id -u; cat /etc/marker; exit 3'], env: ['X=hello from the guest'], uid: 1000 },
    });
    await client.startContainer(c.containerId);
    expect(await client.wait(c)).toEqual({ exitCode: 3, signal: null });
    const out = Buffer.concat(stdio.filter((e) => e.containerId === c.containerId && e.stream === 'stdout' && e.data).map((e) => e.data!));
    expect(out.toString()).toBe(`hello from the guest\n1000\n${ROOTFS_MARKER}`);
    expect(exits).toContainEqual({ containerId: 'ctr-linux-1', exitCode: 3, signal: null });
    await client.destroyContainer(c.containerId);
    await client.unmountStorage('/run/nodevisor/containers/ctr-linux-1');
  });
});
