/**
 * What a sandbox's network namespace holds, read with `ip -json`: the Ethernet interfaces a
 * CNI plugin put there (loopback and our own taps aside), each with its MAC, MTU, addresses
 * and routes — what the VM's device and the guest agent's `network.update` need.
 */
import { ipJson } from './iproute.js';

/** The prefix of the taps nodevisor creates (kept out of the interfaces it connects). */
export const TAP_PREFIX = 'nvtap';

export interface IpAddress {
  family: 'inet' | 'inet6';
  address: string;
  prefixLength: number;
}

export interface Route {
  /** 'default' or a CIDR. */
  dest: string;
  gateway?: string;
  /** The interface's name in the netns. */
  device: string;
  family: 'inet' | 'inet6';
  scope?: string;
}

export interface NetnsInterface {
  name: string;
  index: number;
  mac: string;
  mtu: number;
  up: boolean;
  addresses: IpAddress[];
}

interface IpLink {
  ifindex: number;
  ifname: string;
  address?: string;
  link_type?: string;
  mtu?: number;
  flags?: string[];
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  scope?: string;
  protocol?: string;
}

/** The Ethernet interfaces of `netns` (not loopback, not our taps), in ifindex order. */
export async function listInterfaces(netns: string): Promise<NetnsInterface[]> {
  const links = await ipJson<IpLink[]>(netns, ['address', 'show']);
  return links
    .filter((l) => l.link_type === 'ether' && !l.ifname.startsWith(TAP_PREFIX) && l.address !== undefined)
    .sort((a, b) => a.ifindex - b.ifindex)
    .map((l) => ({
      name: l.ifname,
      index: l.ifindex,
      mac: l.address!,
      mtu: l.mtu ?? 1500,
      up: (l.flags ?? []).includes('UP'),
      addresses: (l.addr_info ?? [])
        .filter((a) => (a.family === 'inet' || a.family === 'inet6') && a.scope !== 'link')
        .map((a) => ({ family: a.family as 'inet' | 'inet6', address: a.local, prefixLength: a.prefixlen })),
    }));
}

/** The routes of `netns` through the given interfaces (kernel-made link routes included). */
export async function listRoutes(netns: string, devices: string[]): Promise<Route[]> {
  const out: Route[] = [];
  for (const family of ['inet', 'inet6'] as const) {
    const routes = await ipJson<IpRoute[]>(netns, [family === 'inet' ? '-4' : '-6', 'route', 'show']);
    for (const r of routes) {
      if (r.dev === undefined || !devices.includes(r.dev)) continue;
      if (family === 'inet6' && r.dst.startsWith('fe80')) continue;
      const route: Route = { dest: r.dst, device: r.dev, family };
      if (r.gateway !== undefined) route.gateway = r.gateway;
      if (r.scope !== undefined) route.scope = r.scope;
      out.push(route);
    }
  }
  return out;
}

/** A neighbour entry the netns holds for one of the connected interfaces. */
export interface Neighbor {
  address: string;
  mac: string;
  device: string;
}

interface IpNeigh {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

/**
 * The permanent neighbours of `netns` on the given interfaces (what a CNI plugin or a hook put
 * there with `ip neigh add ... nud permanent`); learned entries are the guest's to learn again.
 */
export async function listNeighbors(netns: string, devices: string[]): Promise<Neighbor[]> {
  const entries = await ipJson<IpNeigh[]>(netns, ['neigh', 'show', 'nud', 'permanent']);
  return entries
    .filter((e) => e.dev !== undefined && devices.includes(e.dev) && e.lladdr !== undefined)
    .map((e) => ({ address: e.dst, mac: e.lladdr!, device: e.dev! }));
}
