/**
 * Tier 3 (KVM, the probe guest): a sandbox with isolation 'vm' gets the network of its netns
 * (issue 15). The netns holds a veth as a CNI plugin leaves it (`eth0` with the VM's address,
 * its peer in the host netns with the host's); createSandbox hot-plugs a virtio-net endpoint
 * with eth0's MAC behind a tap and tc redirects, and configures the guest (the probe:
 * `net.config`). The host then pings the VM's address through the sandbox.
 *
 * The probe refuses storage.mount, so createSandbox fails at "create the container": that is
 * the fault after the network step, which must roll the network back. The ping runs while the
 * sandbox is being created (from the backend's attachDisk, through the backend seam), and a
 * Sandbox over the real VM backend checks that delete disconnects.
 */
import { closeSync, openSync, ftruncateSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { NodevisorError } from '../../src/errors.js';
import { probeGuestPath } from '../../src/guest/probe.js';
import { ContainerIdMapping } from '../../src/mapping/container-id-mapping.js';
import { validateSpec } from '../../src/oci/validate.js';
import { setBackendStarter } from '../../src/sandbox/create.js';
import { createSandbox, Sandbox } from '../../src/sandbox/index.js';
import { startVmBackend } from '../../src/sandbox/vm-backend.js';
import { busyboxSpec, runtimeConfig } from '../helpers/sandbox.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { dropNetRig, makeNetRig, netLeftovers as leftovers, pingFromHost as ping, sh, type NetRig as Rig } from '../helpers/net-rig.js';
import { tempDir } from '../helpers/tmp.js';

const canRun = skipUnless(
  "sandbox networking through createSandbox (isolation 'vm', the probe guest)",
  needs.kvm,
  needs.root,
  needs.command('tc'),
  needs.command('ping'),
);

const NOTHING = { taps: [], qdiscs: [], filters: '' };

/** The sandbox's spec, its network namespace the rig's (as a CNI-made netns is handed in). */
function specIn(netns: string) {
  return busyboxSpec(['true'], {
    linux: { namespaces: [{ type: 'pid' }, { type: 'network', path: netns }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }] },
  });
}

describe("sandbox networking (isolation 'vm', probe guest)", canRun, () => {
  let work: string;
  let mapping: ContainerIdMapping;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(() => {
    work = tempDir('nodevisor-sandbox-net-');
    mapping = new ContainerIdMapping(join(work, 'mapping'));
    // The rootfs the probe is asked to mount (it refuses): any non-empty image file will do.
    const fd = openSync(join(work, 'image'), 'w');
    ftruncateSync(fd, 1 << 20);
    closeSync(fd);
  });
  afterEach(async () => {
    setBackendStarter('vm', undefined);
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function rig(options?: { vmAddress?: boolean }): Promise<Rig> {
    const r = await makeNetRig('nvsbn', options);
    cleanups.push(() => dropNetRig(r));
    return r;
  }

  function create(r: Rig, id: string): Promise<NodevisorError & { step?: string }> {
    return createSandbox({
      spec: specIn(r.netns),
      runtimeConfig: runtimeConfig(probeGuestPath()),
      rootFs: { source: join(work, 'image'), type: 'ext4', options: ['ro'], mounted: false },
      containerId: id,
      bundlePath: work,
      isolation: 'vm',
      mapping,
      stateRoot: join(work, 'state'),
    }).then(
      () => {
        throw new Error(`createSandbox ${id} succeeded with the probe guest`);
      },
      (e: unknown) => e as NodevisorError & { step?: string },
    );
  }

  it('connects the netns to the VM after it starts: the host pings the VM; the refused mount after it rolls the network back', { timeout: 120_000 }, async () => {
    const r = await rig();
    let during: { code: number | null; out: string } | undefined;
    let wired: ReturnType<typeof leftovers> | undefined;
    // The container step comes after the network step: ping the VM from there, then go on.
    setBackendStarter('vm', async (options) => {
      const backend = await startVmBackend(options);
      const attachDisk = backend.attachDisk.bind(backend);
      backend.attachDisk = async (...args) => {
        wired = leftovers(r.netns);
        during = await ping(r.vmIp);
        return attachDisk(...args);
      };
      return backend;
    });
    const err = await create(r, 'net-ping');
    expect(err.step).toBe('create the container');
    expect(during?.out).toMatch(/3 packets transmitted, 3 received/);
    expect(during?.code).toBe(0);
    expect(wired?.taps).toHaveLength(1);
    expect(wired?.taps[0]).toMatch(/nvtap0.*link\/ether/);
    expect(wired?.qdiscs).toHaveLength(2); // eth0 and the tap
    expect(wired?.filters).toContain('nvtap0');
    // Rolled back: no tap, qdisc or filter in the netns (which the caller owns and keeps).
    expect(leftovers(r.netns)).toEqual(NOTHING);
  });

  it('a failing guest step (the probe needs an IPv4 address) fails "connect the network" and leaves nothing', { timeout: 60_000 }, async () => {
    const r = await rig({ vmAddress: false });
    const err = await create(r, 'net-noaddr');
    expect(err.step).toBe('connect the network');
    expect(err.message).toMatch(/the probe guest needs an IPv4 address on eth0/);
    expect(err.code).toBe('EINVAL');
    expect(leftovers(r.netns)).toEqual(NOTHING);
  });

  it('more interfaces than net slots fails "connect the network" with ENOSPC and leaves nothing', { timeout: 60_000 }, async () => {
    const r = await rig();
    const name = basename(r.netns);
    for (const n of [1, 2]) sh('ip', ['-n', name, 'link', 'add', `eth${n}`, 'type', 'veth', 'peer', 'name', `peer${n}`]);
    const err = await create(r, 'net-nospace');
    expect(err.step).toBe('connect the network');
    expect(err.code).toBe('ENOSPC');
    expect(leftovers(r.netns)).toEqual(NOTHING);
  });

  it('Sandbox.delete disconnects the network: no tap, qdisc or filter left', { timeout: 60_000 }, async () => {
    const r = await rig();
    const backend = await startVmBackend({
      sandboxId: 'net-delete',
      netNsPath: r.netns,
      hypervisorConfig: { kernelPath: probeGuestPath(), kernelParams: [] },
      spec: validateSpec(specIn(r.netns)),
      stateDir: join(work, 'unused'),
    });
    cleanups.push(() => backend.stop());
    await backend.connectNetwork!(r.netns);
    const sandbox = new Sandbox({
      id: 'net-delete',
      netNsPath: r.netns,
      netNsCreated: false,
      backend,
      mapping,
      builtIn: true,
      stateDir: join(work, 'unused'),
      onDeleted: () => undefined,
    });
    expect((await ping(r.vmIp)).code).toBe(0);
    expect(leftovers(r.netns).taps).toHaveLength(1);
    await sandbox.delete();
    expect(leftovers(r.netns)).toEqual(NOTHING);
  });
});
