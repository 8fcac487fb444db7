/**
 * Tier 3: disk slots and the agent channel as the host sees them — attach, detach and every
 * refusal — on a running probe VM. (What the guest sees is in vm-virtio-guest.test.ts.)
 */
import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { probeGuestPath } from '../../src/guest/probe.js';
import { Vm } from '../../src/vm/vm.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';
import { bootProbe } from '../helpers/probe-vm.js';

function image(dir: string, name: string, bytes = 1 << 20): string {
  const path = join(dir, name);
  writeFileSync(path, '');
  truncateSync(path, bytes);
  return path;
}

describe('disk slots and the agent channel (host side)', skipUnless('virtio hot-plug on the host side', needs.kvm), () => {
  const vms: Vm[] = [];
  afterEach(async () => {
    for (const vm of vms.splice(0)) await vm.stop();
  });

  it('attaches into free slots, refuses a full VM, detaches and attaches again', async () => {
    const dir = tempDir();
    const vm = await bootProbe({ hotplugSlots: 2 });
    vms.push(vm);
    expect(await vm.attachDisk({ path: image(dir, 'a.img'), serial: 'ctr-a' })).toBe(0);
    expect(await vm.attachDisk({ path: image(dir, 'b.img'), serial: 'ctr-b', readOnly: true })).toBe(1);
    await expect(vm.attachDisk({ path: image(dir, 'c.img'), serial: 'ctr-c' })).rejects.toMatchObject({
      code: 'ENOSPC',
      message: expect.stringContaining('no free hot-plug slot'),
    });
    await vm.detachDisk(0);
    expect(await vm.attachDisk({ path: join(dir, 'c.img'), serial: 'ctr-c' })).toBe(0);
    await expect(vm.detachDisk(7)).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('puts boot disks before the hot-plug slots', async () => {
    const dir = tempDir();
    const vm = await bootProbe({ disks: [{ path: image(dir, 'root.img'), serial: 'boot' }], hotplugSlots: 1 });
    vms.push(vm);
    expect(await vm.attachDisk({ path: image(dir, 'x.img') })).toBe(1);
    await expect(vm.detachDisk(1)).resolves.toBeUndefined();
    await expect(vm.detachDisk(1)).rejects.toMatchObject({ code: 'ENOENT' });
    // A boot disk cannot be emptied (attach could never refill it); slot numbers are checked.
    await expect(vm.detachDisk(0)).rejects.toThrow(/holds a disk given at boot/);
    await expect(vm.detachDisk(2 ** 32)).rejects.toThrow(/slot must be an integer from 0 to 4294967295/);
  });

  it('refuses a missing path, a long serial, a directory and the same writable disk twice', async () => {
    const dir = tempDir();
    const vm = await bootProbe({ hotplugSlots: 3 });
    vms.push(vm);
    await expect(vm.attachDisk({ path: join(dir, 'missing.img') })).rejects.toMatchObject({ code: 'ENOENT', path: join(dir, 'missing.img') });
    await expect(vm.attachDisk({ path: image(dir, 's.img'), serial: 'x'.repeat(21) })).rejects.toThrow(/longer than 20 bytes/);
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    await expect(vm.attachDisk({ path: sub })).rejects.toThrow(/neither a regular file nor a block device/);
    const shared = image(dir, 'shared.img');
    await vm.attachDisk({ path: shared });
    await expect(vm.attachDisk({ path: shared })).rejects.toMatchObject({ code: 'EBUSY' });
    // Read-only a second time is allowed: nothing writes through it.
    await expect(vm.attachDisk({ path: shared, readOnly: true })).resolves.toBe(1);
  });

  it('refuses more devices than the VM has interrupt lines for, when it is created', async () => {
    await expect(Vm.create({ kernel: probeGuestPath(), hotplugSlots: 19 })).rejects.toThrow(/hotplugSlots must be an integer from 0 to 18/);
  });

  it('ends the agent stream when the VM ends, and refuses writes after', async () => {
    const vm = await bootProbe();
    const agent = vm.agent;
    const errors: Error[] = [];
    agent.on('error', (err) => errors.push(err));
    const ended = new Promise<void>((resolve) => agent.on('end', resolve));
    agent.resume();
    await vm.stop();
    await ended;
    await expect(new Promise((resolve, reject) => agent.write(Buffer.from('x'), (err) => (err ? reject(err) : resolve(undefined))))).rejects.toMatchObject({ code: 'EPIPE' });
    expect(errors.map((e) => (e as { code?: string }).code)).toEqual(['EPIPE']);
  });

  it('attach on a stopped VM is refused', async () => {
    const dir = tempDir();
    const vm = await bootProbe({ hotplugSlots: 1 });
    await vm.stop();
    await expect(vm.attachDisk({ path: image(dir, 'late.img') })).rejects.toMatchObject({ code: 'EBUSY' });
  });
});
