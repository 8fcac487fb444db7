/**
 * Kata's "tcfilter" wiring between one netns interface (a CNI veth) and a tap: an
 * ingress qdisc on each, and a u32 match-all filter on each whose action is `mirred egress
 * redirect` to the other. Frames then pass veth ↔ tap without the netns's own stack seeing
 * them; the VM's device carries the veth's MAC, so peers see one host.
 *
 * Undo order matters only for tidiness: deleting an ingress qdisc deletes its filters.
 */
import { iproute } from './iproute.js';

/** Redirects all traffic both ways between `iface` and `tap` inside `netns`. */
export async function addTcRedirect(netns: string, iface: string, tap: string): Promise<void> {
  for (const [from, to] of [
    [iface, tap],
    [tap, iface],
  ] as const) {
    await iproute(netns, 'tc', ['qdisc', 'add', 'dev', from, 'handle', 'ffff:', 'ingress']);
    await iproute(netns, 'tc', [
      'filter', 'add', 'dev', from, 'parent', 'ffff:', 'protocol', 'all',
      'u32', 'match', 'u8', '0', '0',
      'action', 'mirred', 'egress', 'redirect', 'dev', to,
    ]);
  }
}

/**
 * Removes the ingress qdiscs (and with them the filters) from `iface` and `tap`. A device or
 * qdisc already gone is not an error (teardown after a failed connect, or after the VM
 * stopped and took its tap with it); the first other failure is thrown after trying both.
 */
export async function removeTcRedirect(netns: string, iface: string, tap: string): Promise<void> {
  let first: unknown;
  for (const dev of [iface, tap]) {
    try {
      await iproute(netns, 'tc', ['qdisc', 'del', 'dev', dev, 'ingress']);
    } catch (err) {
      const text = String((err as Error).message);
      if (/Cannot find device|No such file|Invalid handle|Cannot delete qdisc with handle of zero|No such device/i.test(text)) continue;
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}
