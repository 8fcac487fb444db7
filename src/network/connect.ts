/**
 * `connectSandboxNetwork(vm, netns)`: gives a VM the network of a sandbox's netns, as Kata does
 * with its default tcfilter model (endpoints are hot-plugged, as into a factory VM: Kata B39). For each Ethernet interface a CNI plugin
 * put in the netns (loopback aside):
 *
 *  1. the VMM opens a tap `nvtap<N>` inside the netns (created there, non-persistent: it goes
 *     away when the VM closes it) and hot-plugs it into a free virtio-net slot of the VM with
 *     the interface's MAC (`vm.attachNet`; the VM needs `hotplugNetSlots`);
 *  2. the tap gets the interface's MTU and is set up;
 *  3. tc ingress qdiscs and mirred redirect filters join interface and tap both ways.
 *
 * The result lists each interface with its addresses and routes, which the caller hands to
 * the guest agent (`AgentClient.networkUpdate`) so the guest's eth<N> gets the same
 * configuration. `disconnect()` undoes it all (Kata's Network.Remove detaching the endpoints, B18): filters and qdiscs, the slot emptied (the tap
 * closes and disappears). A failure part-way undoes what was done before rethrowing.
 *
 * Runs on the JS thread; every ip/tc call is a child process awaited outside the netns.
 */
import { NodevisorError, wrapError } from '../errors.js';
import type { Vm } from '../vm/vm.js';
import { listInterfaces, listNeighbors, listRoutes, TAP_PREFIX, type IpAddress, type Neighbor, type Route } from './interfaces.js';
import { iproute } from './iproute.js';
import { addTcRedirect, removeTcRedirect } from './tcfilter.js';

export interface ConnectedInterface {
  /** The interface in the netns (the CNI veth). */
  name: string;
  /** Its MAC, which the VM's device reports too. */
  mac: string;
  mtu: number;
  addresses: IpAddress[];
  /** The tap inside the netns. */
  tap: string;
  /** The VM's net slot (`vm.detachNet(slot)`). */
  slot: number;
}

export interface SandboxNetwork {
  netns: string;
  interfaces: ConnectedInterface[];
  /** Routes of the netns through the connected interfaces, for the agent's network.update. */
  routes: Route[];
  /** Permanent neighbour entries of the netns on the connected interfaces. */
  neighbors: Neighbor[];
  /** Removes filters and qdiscs and empties the VM's slots. Idempotent. */
  disconnect(): Promise<void>;
}

/** The hot-plug surface of a Vm this needs (a Vm, or a stand-in in tests). */
export type NetAttachable = Pick<Vm, 'attachNet' | 'detachNet'>;

async function undoOne(vm: NetAttachable, netns: string, iface: ConnectedInterface | Partial<ConnectedInterface>): Promise<unknown[]> {
  const errors: unknown[] = [];
  if (iface.name !== undefined && iface.tap !== undefined) {
    try {
      await removeTcRedirect(netns, iface.name, iface.tap);
    } catch (err) {
      errors.push(err);
    }
  }
  if (iface.slot !== undefined) {
    try {
      await vm.detachNet(iface.slot);
    } catch (err) {
      // A VM that already stopped took its taps with it.
      if ((err as { code?: string }).code !== 'EBUSY') errors.push(err);
    }
  }
  return errors;
}

export async function connectSandboxNetwork(vm: NetAttachable, netns: string): Promise<SandboxNetwork> {
  if (typeof netns !== 'string' || netns.length === 0) {
    throw new NodevisorError('connectSandboxNetwork: netns must be the path of a network namespace', { code: 'EINVAL' });
  }
  const found = await listInterfaces(netns);
  const connected: ConnectedInterface[] = [];
  let partial: Partial<ConnectedInterface> | undefined;
  try {
    for (const [n, iface] of found.entries()) {
      const tap = `${TAP_PREFIX}${n}`;
      partial = { name: iface.name, tap };
      const slot = await vm.attachNet({ tapName: tap, netns, mac: iface.mac });
      partial.slot = slot;
      await iproute(netns, 'ip', ['link', 'set', 'dev', tap, 'mtu', String(iface.mtu), 'up']);
      await addTcRedirect(netns, iface.name, tap);
      connected.push({ name: iface.name, mac: iface.mac, mtu: iface.mtu, addresses: iface.addresses, tap, slot });
      partial = undefined;
    }
  } catch (err) {
    if (partial) await undoOne(vm, netns, partial);
    for (const c of connected.reverse()) await undoOne(vm, netns, c);
    throw wrapError(`cannot connect the VM to the network of ${netns}`, err);
  }
  let routes: Route[];
  let neighbors: Neighbor[];
  try {
    const names = connected.map((c) => c.name);
    routes = await listRoutes(netns, names);
    neighbors = await listNeighbors(netns, names);
  } catch (err) {
    for (const c of [...connected].reverse()) await undoOne(vm, netns, c);
    throw wrapError(`cannot read the routes and neighbours of ${netns}`, err);
  }
  let done: Promise<void> | undefined;
  return {
    netns,
    interfaces: connected,
    routes,
    neighbors,
    disconnect() {
      done ??= (async () => {
        const errors: unknown[] = [];
        for (const c of [...connected].reverse()) errors.push(...(await undoOne(vm, netns, c)));
        if (errors.length > 0) throw wrapError(`cannot fully disconnect the VM from ${netns}`, errors[0]);
      })();
      return done;
    },
  };
}
