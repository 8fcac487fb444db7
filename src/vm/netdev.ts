/**
 * Checks a network endpoint for a VM's virtio-net device (`Vm.create({ netdevs })`,
 * `vm.attachNet`): a tap fd the caller opened, or a tap name opened (created when missing)
 * inside a network namespace by the VMM. The VMM checks the tap itself (IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR); this layer catches what a caller can fix without reading C++ messages.
 */
import { invalid } from '../errors.js';

export interface NetdevConfig {
  /**
   * An open tap fd (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR); the VMM keeps a dup of it, taken while
   * `Vm.create` / `attachNet` runs, so keep it open until that resolves (then close it at will).
   */
  tapFd?: number;
  /** Or the name of a tap the VMM opens, creating it when missing (1..15 bytes). */
  tapName?: string;
  /** The network namespace file `tapName` lives in (/run/netns/x); default: the VMM's own. */
  netns?: string;
  /** The MAC the guest's device reports, 'aa:bb:cc:dd:ee:ff'. */
  mac: string;
}

/** What the addon takes: one of tapFd / tapName, the MAC as six numbers. */
export interface CheckedNetdev {
  tapFd?: number;
  tapName?: string;
  netns?: string;
  mac: number[];
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const IFNAME = /^[^/:\s\0]{1,15}$/;

/** 'aa:bb:cc:dd:ee:ff' → six numbers; a bad MAC is an EINVAL naming `name`. */
export function parseMac(mac: unknown, name = 'mac'): number[] {
  if (typeof mac !== 'string' || !MAC.test(mac)) {
    throw invalid(`${name} must be a MAC address like 02:00:00:00:00:01 (got ${String(mac)})`);
  }
  const bytes = mac.split(':').map((b) => Number.parseInt(b, 16));
  if ((bytes[0]! & 1) !== 0) throw invalid(`${name} ${mac} is a multicast address; a device needs a unicast one`);
  return bytes;
}

export function checkNetdev(net: NetdevConfig, name = 'netdev'): CheckedNetdev {
  if (typeof net !== 'object' || net === null) {
    throw invalid(`${name} must be an object { tapFd | tapName, netns?, mac }`);
  }
  const mac = parseMac(net.mac, `${name}.mac`);
  if ((net.tapFd === undefined) === (net.tapName === undefined)) {
    throw invalid(`${name} needs exactly one of tapFd and tapName`);
  }
  if (net.tapFd !== undefined) {
    if (!Number.isInteger(net.tapFd) || net.tapFd < 0 || net.tapFd > 0x7fff_ffff) {
      throw invalid(`${name}.tapFd must be an open file descriptor (got ${String(net.tapFd)})`);
    }
    if (net.netns !== undefined) throw invalid(`${name}.netns goes with tapName; a tap fd already has its namespace`);
    return { tapFd: net.tapFd, mac };
  }
  if (typeof net.tapName !== 'string' || !IFNAME.test(net.tapName) || Buffer.byteLength(net.tapName) > 15) {
    throw invalid(`${name}.tapName must be an interface name of 1 to 15 bytes without '/', ':' or spaces (got ${String(net.tapName)})`);
  }
  const checked: CheckedNetdev = { tapName: net.tapName, mac };
  if (net.netns !== undefined) {
    if (typeof net.netns !== 'string' || net.netns.length === 0 || net.netns.includes('\0')) {
      throw invalid(`${name}.netns must be a non-empty path`);
    }
    checked.netns = net.netns;
  }
  return checked;
}
