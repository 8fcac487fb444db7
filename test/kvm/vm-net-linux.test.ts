/**
 * Tier 5 (DESIGN §6): the Linux-guest version of sandbox networking. A netns with a veth pair
 * (one end in the host netns) is connected to a Linux guest by connectSandboxNetwork; the agent
 * configures the guest's interface from network.update (found by MAC, renamed to the netns
 * name, same address and routes); then the host reaches the guest and a container in the guest
 * reaches the host.
 *
 * Needs hardware-virtualized KVM (a stock kernel cannot reach user space on kvm_pvm), so it is
 * skipped here with the reason. The guest image gets virtio_net besides the default modules.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { basename } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AgentClient } from '../../src/agent/client.js';
import type { StdioEvent } from '../../src/agent/messages.js';
import { buildGuestImage } from '../../src/guest/image/build.js';
import { createNetNs, deleteNetNs } from '../../src/netns/netns.js';
import { connectSandboxNetwork, type SandboxNetwork } from '../../src/network/index.js';
import { Vm } from '../../src/vm/vm.js';
import { busyboxRootfsNeed, makeBusyboxImage } from '../helpers/busybox-rootfs.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

const what = 'Linux guest networking through network.update (tier 5)';
const canRun = skipUnless(what, needs.hardwareKvm, needs.root, needs.command('tc'), needs.command('ping'), busyboxRootfsNeed());

const run = promisify(execFile);

describe('Linux guest networking (hardware KVM)', canRun, () => {
  let vm: Vm;
  let client: AgentClient;
  let network: SandboxNetwork;
  let netns = '';
  const hostVeth = `nvl${randomBytes(4).toString('hex')}`;
  const net = `10.${randomInt(100, 250)}.${randomInt(0, 255)}`;
  const stdio: StdioEvent[] = [];

  beforeAll(async () => {
    const image = await buildGuestImage({ extraModules: ['virtio_net'], progress: (l) => console.log(`guest build: ${l}`) });
    if (!image.vmlinux) throw new Error(`guest build unpacked no vmlinux from ${image.kernel}`);
    netns = await createNetNs({ name: `nvlinuxnet-${randomBytes(6).toString('hex')}` });
    const name = basename(netns);
    execFileSync('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    execFileSync('ip', ['addr', 'add', `${net}.1/24`, 'dev', hostVeth]);
    execFileSync('ip', ['link', 'set', hostVeth, 'up']);
    execFileSync('ip', ['-n', name, 'addr', 'add', `${net}.2/24`, 'dev', 'eth0']);
    execFileSync('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
    execFileSync('ip', ['-n', name, 'route', 'add', 'default', 'via', `${net}.1`]);
    vm = await Vm.create({
      kernel: image.vmlinux,
      initrd: image.initrd,
      cmdline: 'console=ttyS0 panic=-1 quiet',
      memoryMiB: 256,
      hotplugSlots: 1,
      hotplugNetSlots: 1,
    });
    await vm.start();
    client = new AgentClient(vm.agent, { timeoutMs: 30_000 });
    client.on('stdio', (e) => stdio.push(e));
    await client.ping();
    network = await connectSandboxNetwork(vm, netns);
  }, 180_000);

  afterAll(async () => {
    await network?.disconnect();
    client?.close();
    await vm?.stop();
    try {
      execFileSync('ip', ['link', 'del', hostVeth], { stdio: 'ignore' });
    } catch {
      // gone with the netns
    }
    if (netns) await deleteNetNs(netns);
  });

  it('configures eth0 from network.update, and the host pings the guest', async () => {
    const done = await client.networkUpdate({
      interfaces: network.interfaces.map((i) => ({
        mac: i.mac,
        name: i.name,
        mtu: i.mtu,
        addresses: i.addresses.map((a) => ({ address: a.address, prefixLength: a.prefixLength })),
      })),
      routes: network.routes.filter((r) => r.family === 'inet').map((r) => ({ dest: r.dest, gateway: r.gateway, device: r.device })),
    });
    expect(done).toEqual([{ mac: network.interfaces[0]!.mac, name: 'eth0', index: expect.any(Number) }]);
    const { stdout } = await run('ping', ['-c', '3', '-W', '5', `${net}.2`]);
    expect(stdout).toMatch(/3 packets transmitted, 3 received/);
  });

  it('runs a container that reaches the host', async () => {
    const disk = makeBusyboxImage(tempDir('nodevisor-linux-net-'));
    await vm.attachDisk({ path: disk, readOnly: true, serial: 'ctr-net-1' });
    const rootfs = '/run/nodevisor/containers/ctr-net-1';
    await client.mountStorage({ serial: 'ctr-net-1', fstype: 'ext4', options: ['ro'], mountPoint: rootfs, timeoutMs: 10_000 });
    await client.createContainer({ containerId: 'ctr-net-1', rootfs, process: { args: ['ping', '-c', '3', '-W', '5', `${net}.1`] } });
    await client.startContainer('ctr-net-1');
    const result = await client.wait({ containerId: 'ctr-net-1' });
    const out = Buffer.concat(stdio.filter((e) => e.containerId === 'ctr-net-1' && e.data).map((e) => e.data!)).toString();
    expect(result, out).toEqual({ exitCode: 0, signal: null });
    await client.destroyContainer('ctr-net-1');
    await client.unmountStorage(rootfs);
  }, 60_000);
});
