/**
 * Hands a connected sandbox network to the guest: the agent's `network.update` (interfaces by
 * MAC with the netns names, MTU and addresses; routes; permanent neighbours), or, for the probe
 * guest (tests and benchmarks), `net.config` with the one interface's IPv4 address.
 *
 * JS thread only.
 */
import type { AgentClient } from '../agent/client.js';
import { NodevisorError, errorCode } from '../errors.js';
import type { SandboxNetwork } from './connect.js';

/** What `configureGuestNetwork` did. */
export type GuestNetworkResult = 'network.update' | 'net.config' | 'refused';

/** The probe guest's name in its ping answer. */
const PROBE_AGENT = 'nodevisor-probe';

/**
 * Configures the guest's side of `network`. A guest that refuses `network.update` (ENOTSUP)
 * resolves 'refused' and keeps its devices unconfigured; other errors reject.
 */
export async function configureGuestNetwork(agent: AgentClient, network: SandboxNetwork): Promise<GuestNetworkResult> {
  if (network.interfaces.length === 0) return 'network.update';
  const ping = await agent.ping(); // which guest: the probe has its own request
  if (ping.agent === PROBE_AGENT) {
    // The probe's driver serves one device with one IPv4 address.
    const iface = network.interfaces[0]!;
    const ip = iface.addresses.find((a) => a.family === 'inet');
    if (ip === undefined) {
      throw new NodevisorError(`the probe guest needs an IPv4 address on ${iface.name} in ${network.netns}`, { code: 'EINVAL' });
    }
    await agent.request('net.config', { ip: ip.address }); // the device already has the veth's MAC
    return 'net.config';
  }
  try {
    await agent.networkUpdate({
      interfaces: network.interfaces.map((i) => ({
        mac: i.mac,
        name: i.name,
        mtu: i.mtu,
        up: true,
        addresses: i.addresses.map(({ address, prefixLength }) => ({ address, prefixLength })),
      })),
      routes: network.routes.map(({ dest, gateway, device }) => (gateway === undefined ? { dest, device } : { dest, gateway, device })),
      neighbors: network.neighbors.map(({ address, mac, device }) => ({ address, mac, device })),
    });
    return 'network.update';
  } catch (err) {
    if (errorCode(err) === 'ENOTSUP') return 'refused';
    throw err;
  }
}
