/**
 * Tier 3: sandbox networking end to end with the probe guest (issue 15). A network namespace
 * gets a veth pair as a CNI plugin would make it (one end in the netns with the VM's address,
 * the other in the host netns); connectSandboxNetwork wires the netns's veth to a tap and the
 * VM's hot-plugged virtio-net device with tc mirred redirects (Kata's tcfilter); the probe
 * answers ARP and ICMP echo for the address `net.config` gave it, and echoes UDP on port 7.
 * After disconnect no tap, qdisc or filter is left in the netns.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readdirSync } from 'node:fs';
import { basename } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { AgentClient } from '../../src/agent/client.js';
import { probeGuestPath } from '../../src/guest/probe.js';
import { createNetNs, deleteNetNs } from '../../src/netns/netns.js';
import { connectSandboxNetwork, type SandboxNetwork } from '../../src/network/index.js';
import { Vm } from '../../src/vm/vm.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { bootProbe } from '../helpers/probe-vm.js';

const canRun = skipUnless('sandbox networking with a probe VM', needs.kvm, needs.root, needs.command('tc'));
const hasPing = skipUnless('ICMP echo from the host', needs.command('ping'));

interface Rig {
  netns: string;
  hostVeth: string;
  hostIp: string;
  vmIp: string;
  vmMac: string;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A netns with `eth0` (the VM's address, as CNI leaves it) paired with a veth in the host netns. */
async function makeRig(): Promise<Rig> {
  const netns = await createNetNs({ name: `nvnet-${randomBytes(6).toString('hex')}` });
  const name = basename(netns);
  const hostVeth = `nvh${randomBytes(4).toString('hex')}`;
  const net = `10.${randomInt(100, 250)}.${randomInt(0, 255)}`;
  const vmMac = `02:${[...randomBytes(5)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
  sh('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
  sh('ip', ['addr', 'add', `${net}.1/24`, 'dev', hostVeth]);
  sh('ip', ['link', 'set', hostVeth, 'up']);
  sh('ip', ['-n', name, 'link', 'set', 'eth0', 'address', vmMac]);
  sh('ip', ['-n', name, 'addr', 'add', `${net}.2/24`, 'dev', 'eth0']);
  sh('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return { netns, hostVeth, hostIp: `${net}.1`, vmIp: `${net}.2`, vmMac };
}

async function dropRig(rig: Rig): Promise<void> {
  try {
    sh('ip', ['link', 'del', rig.hostVeth]);
  } catch {
    // Gone with the netns already.
  }
  await deleteNetNs(rig.netns);
}

async function probeVm(): Promise<{ vm: Vm; agent: AgentClient }> {
  const vm = await bootProbe({ hotplugNetSlots: 1 });
  return { vm, agent: new AgentClient(vm.agent, { timeoutMs: 60_000 }) };
}

/** Runs a command to its end without blocking the event loop (the VM's devices need it). */
function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** UDP datagrams to the probe's echo port, one at a time; resolves how many came back intact. */
async function udpEcho(ip: string, count: number, bytes: number): Promise<number> {
  const sock = createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, resolve));
  let back = 0;
  try {
    for (let i = 0; i < count; i++) {
      const payload = randomBytes(bytes);
      const reply = new Promise<Buffer | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 2000);
        sock.once('message', (msg) => {
          clearTimeout(timer);
          resolve(msg);
        });
      });
      sock.send(payload, 7, ip);
      const msg = await reply;
      if (msg?.equals(payload)) back++;
    }
  } finally {
    sock.close();
  }
  return back;
}

function leftovers(netns: string): { taps: string; qdiscs: string; filters: string } {
  const name = basename(netns);
  return {
    taps: sh('ip', ['-n', name, '-o', 'link', 'show']).split('\n').filter((l) => l.includes('nvtap')).join('\n'),
    qdiscs: sh('tc', ['-n', name, 'qdisc', 'show', 'dev', 'eth0']).split('\n').filter((l) => l.includes('ingress')).join('\n'),
    filters: sh('tc', ['-n', name, 'filter', 'show', 'dev', 'eth0', 'ingress']).trim(),
  };
}

describe('sandbox networking with the probe guest (tap + tc mirred)', canRun, () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function connected(): Promise<{ rig: Rig; vm: Vm; agent: AgentClient; network: SandboxNetwork }> {
    const rig = await makeRig();
    cleanups.push(() => dropRig(rig));
    const { vm, agent } = await probeVm();
    cleanups.push(() => vm.stop());
    const network = await connectSandboxNetwork(vm, rig.netns);
    cleanups.push(() => network.disconnect());
    const iface = network.interfaces[0]!;
    const reply = await agent.request('net.config', { ip: iface.addresses[0]!.address });
    expect(reply).toMatchObject({ mac: rig.vmMac, ip: rig.vmIp });
    return { rig, vm, agent, network };
  }

  it('wires the netns veth to a tap and the VM with the veth MAC, addresses and routes', async () => {
    const { rig, network } = await connected();
    expect(network.interfaces).toHaveLength(1);
    expect(network.interfaces[0]).toMatchObject({
      name: 'eth0',
      mac: rig.vmMac,
      tap: 'nvtap0',
      addresses: [{ family: 'inet', address: rig.vmIp, prefixLength: 24 }],
    });
    expect(network.routes).toContainEqual(expect.objectContaining({ dest: `${rig.vmIp.replace(/\.2$/, '.0')}/24`, device: 'eth0' }));
    const name = basename(rig.netns);
    expect(sh('tc', ['-n', name, 'filter', 'show', 'dev', 'eth0', 'ingress'])).toContain('nvtap0');
    expect(sh('tc', ['-n', name, 'filter', 'show', 'dev', 'nvtap0', 'ingress'])).toContain('eth0');
  });

  it('echoes 1,000 UDP datagrams from the host without losing one', async () => {
    const { rig } = await connected();
    expect(await udpEcho(rig.vmIp, 1000, 512)).toBe(1000);
  }, 120_000);

  it('answers ping from the host, and a flood of 1,000 pings loses none', { ...hasPing, timeout: 120_000 }, async () => {
    const { rig } = await connected();
    const once = await run('ping', ['-c', '3', '-W', '5', rig.vmIp]);
    expect(once.out).toMatch(/3 packets transmitted, 3 received/);
    const flood = await run('ping', ['-f', '-c', '1000', '-W', '2', '-q', rig.vmIp]);
    expect(flood.out).toMatch(/1000 packets transmitted, 1000 received, 0% packet loss/);
    expect(flood.code).toBe(0);
  });

  it('leaves no tap, qdisc or filter in the netns after disconnect, and the VM stops answering', async () => {
    const { rig, network } = await connected();
    expect(await udpEcho(rig.vmIp, 3, 64)).toBe(3);
    await network.disconnect();
    await network.disconnect(); // idempotent
    expect(leftovers(rig.netns)).toEqual({ taps: '', qdiscs: '', filters: '' });
    expect(await udpEcho(rig.vmIp, 1, 64)).toBe(0);
  }, 60_000);

  it('leaves nothing behind when the VM stops first, then disconnect runs', async () => {
    const { rig, vm, network } = await connected();
    await vm.stop();
    await network.disconnect();
    expect(leftovers(rig.netns)).toEqual({ taps: '', qdiscs: '', filters: '' });
  }, 60_000);

  it('takes an endpoint at create: a tap the VMM makes inside the netns, gone with the VM', async () => {
    const rig = await makeRig();
    cleanups.push(() => dropRig(rig));
    const name = basename(rig.netns);
    const vm = await Vm.create({
      kernel: probeGuestPath(),
      memoryMiB: 64,
      netdevs: [{ tapName: 'nvtapboot', netns: rig.netns, mac: rig.vmMac }],
    });
    cleanups.push(() => vm.stop());
    // The VMM made the tap inside the netns (not here), and it goes with the VM.
    expect(sh('ip', ['-n', name, '-o', 'link', 'show', 'nvtapboot'])).toContain('nvtapboot');
    expect(() => sh('ip', ['-o', 'link', 'show', 'nvtapboot'])).toThrow();
    await vm.stop();
    expect(leftovers(rig.netns).taps).toBe('');
  });

  it('refuses a bad endpoint with an error naming it, and leaves no tap behind', async () => {
    const rig = await makeRig();
    cleanups.push(() => dropRig(rig));
    await expect(
      Vm.create({ kernel: probeGuestPath(), netdevs: [{ tapName: 'nvtapx', netns: '/proc/self/status', mac: rig.vmMac }] }),
    ).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('not a network namespace') });
    await expect(Vm.create({ kernel: probeGuestPath(), netdevs: [{ tapName: 'nvtapx', mac: '01:00:00:00:00:01' }] })).rejects.toMatchObject({
      code: 'EINVAL',
      message: expect.stringContaining('multicast'),
    });
    await expect(Vm.create({ kernel: probeGuestPath(), netdevs: [{ tapFd: 0, mac: rig.vmMac }] })).rejects.toMatchObject({
      message: expect.stringContaining('tap'),
    });
    await expect(Vm.create({ kernel: probeGuestPath(), netdevs: [{ mac: rig.vmMac }] })).rejects.toMatchObject({ code: 'EINVAL' });
    expect(leftovers(rig.netns).taps).toBe('');
  });

  it('keeps the VM and host responsive while frames flood a device the guest never brought up', async () => {
    const rig = await makeRig();
    cleanups.push(() => dropRig(rig));
    const { vm, agent } = await probeVm();
    cleanups.push(() => vm.stop());
    const network = await connectSandboxNetwork(vm, rig.netns);
    cleanups.push(() => network.disconnect());
    // No net.config yet: the driver has offered no receive buffers. A static neighbour lets
    // the host send without ARP.
    sh('ip', ['neigh', 'replace', rig.vmIp, 'lladdr', rig.vmMac, 'dev', rig.hostVeth, 'nud', 'permanent']);
    const sock = createSocket('udp4');
    const payload = randomBytes(1200);
    for (let i = 0; i < 20_000; i++) sock.send(payload, 9, rig.vmIp);
    const t0 = Date.now();
    expect(await agent.ping()).toMatchObject({ agent: 'nodevisor-probe' });
    expect(Date.now() - t0).toBeLessThan(10_000);
    await new Promise<void>((resolve) => sock.close(resolve));
    await agent.request('net.config', { ip: rig.vmIp });
    // What the tap queued during the flood drains first (a request behind a full tap queue is
    // dropped, as on any NIC); then every echo comes back.
    for (let i = 0; i < 20 && (await udpEcho(rig.vmIp, 1, 64)) === 0; i++);
    expect(await udpEcho(rig.vmIp, 20, 64)).toBe(20);
  }, 90_000);

  it('survives a hostile driver: looping and out-of-RAM transmit chains, a receive ring that lies', async () => {
    const { rig, agent } = await connected();
    for (const hostile of ['tx-loop', 'tx-outside']) {
      await agent.request('net.config', { ip: rig.vmIp, hostile });
      // The device consumed the bad chain and kept serving.
      expect(await udpEcho(rig.vmIp, 20, 64)).toBe(20);
    }
    await agent.request('net.config', { ip: rig.vmIp, hostile: 'rx-avail' });
    // The device stopped (DEVICE_NEEDS_RESET); VM and host go on: the agent still answers.
    expect(await udpEcho(rig.vmIp, 2, 64)).toBe(0);
    expect(await agent.ping()).toMatchObject({ agent: 'nodevisor-probe' });
    // A reset (the next plain net.config) brings it back.
    await agent.request('net.config', { ip: rig.vmIp });
    expect(await udpEcho(rig.vmIp, 20, 64)).toBe(20);
    await expect(agent.request('net.config', { ip: rig.vmIp, hostile: 'nonsense' })).rejects.toMatchObject({ code: 'EINVAL' });
  }, 60_000);

  it('leaks no fd over connect/disconnect and VM cycles', async () => {
    const rig = await makeRig();
    cleanups.push(() => dropRig(rig));
    const cycle = async (): Promise<void> => {
      const { vm, agent } = await probeVm();
      const network = await connectSandboxNetwork(vm, rig.netns);
      await agent.request('net.config', { ip: rig.vmIp });
      expect(await udpEcho(rig.vmIp, 2, 64)).toBe(2);
      await network.disconnect();
      await vm.stop();
    };
    await cycle();
    await Vm.drainTeardown();
    const before = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 5; i++) await cycle();
    await Vm.drainTeardown();
    expect(readdirSync('/proc/self/fd').length).toBe(before);
    expect(leftovers(rig.netns)).toEqual({ taps: '', qdiscs: '', filters: '' });
  }, 120_000);

  it('refuses to connect a VM without a free net slot and leaves the netns as it was', async () => {
    const rig = await makeRig();
    cleanups.push(() => dropRig(rig));
    const vm = await Vm.create({ kernel: probeGuestPath(), memoryMiB: 64 });
    cleanups.push(() => vm.stop());
    await vm.start();
    await expect(connectSandboxNetwork(vm, rig.netns)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(leftovers(rig.netns)).toEqual({ taps: '', qdiscs: '', filters: '' });
  });
});
