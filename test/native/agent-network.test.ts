/**
 * Tier 2 (root): the guest agent's network.update, run on the host inside a fresh network
 * namespace standing in for the guest. A veth there plays the VM's virtio-net interface: the
 * agent finds it by MAC, renames it, sets MTU, address and link, then adds routes and a
 * permanent neighbour — checked with `ip -json`. Bad input fails naming the field and changes
 * nothing.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { enterNetNs } from '../../src/netns/enter.js';
import { createNetNs, deleteNetNs } from '../../src/netns/netns.js';
import { AgentProcess, agentPath } from '../helpers/agent-process.js';
import { need, needs, skipUnless } from '../helpers/needs.js';

const MAC = '02:00:5e:10:20:30';
const PEER_MAC = '02:00:5e:10:20:31';

function ip(ns: string, args: string[]): unknown {
  return JSON.parse(execFileSync('ip', ['-n', ns, '-json', ...args], { encoding: 'utf8' }) || '[]');
}

const agentBuilt = need(existsSync(agentPath), `${agentPath} is not built (npm ci builds it; or npx node-gyp build)`);

describe('agent network.update', skipUnless('network.update in a network namespace', needs.root, needs.command('unshare'), needs.command('ip'), agentBuilt), () => {
  let netns = '';
  let name = '';
  let agent: AgentProcess;

  beforeAll(async () => {
    netns = await createNetNs({ name: `nvagentnet-${randomBytes(6).toString('hex')}` });
    name = basename(netns);
    execFileSync('ip', ['-n', name, 'link', 'add', 'vguest', 'address', MAC, 'type', 'veth', 'peer', 'name', 'vpeer', 'address', PEER_MAC]);
    execFileSync('ip', ['-n', name, 'link', 'set', 'vpeer', 'up']);
    agent = enterNetNs(netns, () => new AgentProcess());
  });

  afterAll(async () => {
    await agent?.stop();
    if (netns) await deleteNetNs(netns);
  });

  it('configures the interface found by MAC, then routes and neighbours', async () => {
    const result = await agent.client.networkUpdate({
      interfaces: [{ mac: MAC, name: 'eth0', mtu: 1400, addresses: [{ address: '10.77.0.2', prefixLength: 24 }] }],
      routes: [
        { dest: 'default', gateway: '10.77.0.1', device: 'eth0' },
        { dest: '192.168.77.0/24', gateway: '10.77.0.1', device: 'eth0' },
      ],
      neighbors: [{ address: '10.77.0.1', mac: PEER_MAC, device: 'eth0' }],
    });
    expect(result).toEqual([{ mac: MAC, name: 'eth0', index: expect.any(Number) }]);
    const [link] = ip(name, ['addr', 'show', 'dev', 'eth0']) as { mtu: number; flags: string[]; addr_info: { local: string; prefixlen: number }[] }[];
    expect(link!.mtu).toBe(1400);
    expect(link!.flags).toContain('UP');
    expect(link!.addr_info).toContainEqual(expect.objectContaining({ local: '10.77.0.2', prefixlen: 24 }));
    const routes = ip(name, ['-4', 'route', 'show']) as { dst: string; gateway?: string; dev: string }[];
    expect(routes).toContainEqual(expect.objectContaining({ dst: 'default', gateway: '10.77.0.1', dev: 'eth0' }));
    expect(routes).toContainEqual(expect.objectContaining({ dst: '192.168.77.0/24', gateway: '10.77.0.1', dev: 'eth0' }));
    const neigh = ip(name, ['neigh', 'show', 'dev', 'eth0']) as { dst: string; lladdr: string; state: string[] }[];
    expect(neigh).toContainEqual(expect.objectContaining({ dst: '10.77.0.1', lladdr: PEER_MAC, state: ['PERMANENT'] }));
    // The same update again is no error (addresses and routes are replaced, not duplicated).
    await agent.client.networkUpdate({
      interfaces: [{ mac: MAC, name: 'eth0', addresses: [{ address: '10.77.0.2', prefixLength: 24 }] }],
      routes: [{ dest: 'default', gateway: '10.77.0.1', device: 'eth0' }],
    });
  });

  it('fails naming the field for an unknown MAC, a bad address or an unknown device, changing nothing', async () => {
    await expect(agent.client.networkUpdate({ interfaces: [{ mac: '02:99:99:99:99:99' }] })).rejects.toMatchObject({
      code: 'ENODEV',
      message: expect.stringContaining('02:99:99:99:99:99'),
    });
    await expect(
      agent.client.networkUpdate({ interfaces: [{ mac: MAC, mtu: 1300, addresses: [{ address: '10.77.0.300', prefixLength: 24 }] }] }),
    ).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('interfaces[0].addresses[0].address') });
    const [link] = ip(name, ['link', 'show', 'dev', 'eth0']) as { mtu: number }[];
    expect(link!.mtu).toBe(1400);
    await expect(agent.client.networkUpdate({ routes: [{ dest: '10.1.0.0/16', device: 'nope0' }] })).rejects.toMatchObject({
      code: 'ENODEV',
      message: expect.stringContaining('routes[0].device'),
    });
    await expect(agent.client.networkUpdate({ interfaces: [{ mac: 'zz' }] })).rejects.toMatchObject({ code: 'EINVAL' });
  });
});
