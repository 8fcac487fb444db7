/**
 * Tier 3: snapshots of a VM with net hot-plug slots (issue 15, for factory templates): the
 * empty slots are recorded and come back empty in every clone, which then gets its network
 * hot-plugged (as Kata does for factory VMs, B39) and answers the host's ping. A slot that holds
 * a tap (host state) and endpoints given at boot are refused with clear errors.
 */
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { AgentClient } from '../../src/agent/client.js';
import { probeGuestPath } from '../../src/guest/probe.js';
import { connectSandboxNetwork } from '../../src/network/index.js';
import { Vm } from '../../src/vm/vm.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { dropNetRig, makeNetRig, netLeftovers, pingFromHost, type NetRig } from '../helpers/net-rig.js';
import { tempDir } from '../helpers/tmp.js';
import { bootProbe } from '../helpers/probe-vm.js';

const canRun = skipUnless('snapshots with net slots (probe VM, netns, ping)', needs.kvm, needs.root, needs.command('tc'), needs.command('ping'));


describe('snapshots of a VM with net hot-plug slots', canRun, () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function rig(): Promise<NetRig> {
    const r = await makeNetRig('nvsnap');
    cleanups.push(() => dropNetRig(r));
    return r;
  }

  async function template(): Promise<string> {
    const dir = tempDir('nodevisor-snapnet-');
    const vm = await bootProbe({ hotplugNetSlots: 2 });
    cleanups.push(() => vm.stop());
    await vm.pause();
    await vm.snapshot(dir);
    return dir;
  }

  it('a template with 2 empty net slots restores them empty; the clone gets a network hot-plugged and the host pings it', { timeout: 120_000 }, async () => {
    const dir = await template();
    for (const n of [1, 2]) {
      // Two clones of one template, each in its own netns.
      const r = await rig();
      const clone = await Vm.restore(dir);
      cleanups.push(() => clone.stop());
      const agent = new AgentClient(clone.agent, { timeoutMs: 30_000 });
      cleanups.push(async () => agent.close());
      expect(await agent.ping()).toMatchObject({ agent: 'nodevisor-probe' });
      const network = await connectSandboxNetwork(clone, r.netns);
      cleanups.push(() => network.disconnect());
      expect(network.interfaces).toHaveLength(1);
      expect(network.interfaces[0]!.slot).toBe(0);
      expect(await agent.request('net.config', { ip: r.vmIp })).toMatchObject({ mac: r.vmMac, ip: r.vmIp });
      const ping = await pingFromHost(r.vmIp);
      expect(ping.out, `clone ${n}`).toMatch(/3 packets transmitted, 3 received/);
      expect(ping.code).toBe(0);
      // The second recorded slot is there, empty: it takes a second tap; a third has no room.
      const second = await clone.attachNet({ tapName: 'nvsnap1', netns: r.netns, mac: '02:00:00:00:00:51' });
      expect(second).toBe(1);
      await expect(clone.attachNet({ tapName: 'nvsnap2', netns: r.netns, mac: '02:00:00:00:00:52' })).rejects.toMatchObject({ code: 'ENOSPC' });
      await clone.detachNet(second);
      await network.disconnect();
      expect(netLeftovers(r.netns)).toEqual({ taps: [], qdiscs: [], filters: '' });
    }
  });

  it('refuses a VM whose net slot holds a tap (ENOTSUP, writes nothing); after detachNet it snapshots', { timeout: 60_000 }, async () => {
    const r = await rig();
    const vm = await bootProbe({ hotplugNetSlots: 1 });
    cleanups.push(() => vm.stop());
    const network = await connectSandboxNetwork(vm, r.netns);
    cleanups.push(() => network.disconnect());
    await vm.pause();
    const dir = tempDir('nodevisor-snapnet-');
    const err = await vm.snapshot(dir).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'NodevisorError', code: 'ENOTSUP' });
    expect((err as Error).message).toMatch(/net slot 0 holds a tap .*detach its network/);
    expect(readdirSync(dir)).toEqual([]);
    await network.disconnect();
    await vm.snapshot(dir);
    expect(readdirSync(dir).sort()).toEqual(['memory', 'state']);
  });

  it('refuses a VM with network endpoints given at boot', { timeout: 60_000 }, async () => {
    const r = await rig();
    const vm = await Vm.create({ kernel: probeGuestPath(), memoryMiB: 64, netdevs: [{ tapName: 'nvboot0', netns: r.netns, mac: r.vmMac }] });
    cleanups.push(() => vm.stop());
    await vm.start();
    await vm.pause();
    const err = await vm.snapshot(tempDir('nodevisor-snapnet-')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ENOTSUP' });
    expect((err as Error).message).toMatch(/network endpoints given at boot.*hotplugNetSlots/);
  });
});
