/**
 * Tier 3: the probe guest's virtio drivers against nodevisor's devices, end to end — the
 * agent protocol over virtio-console, disks hot-plugged while the guest runs and read back
 * through virtio-blk (CRC-32 computed in the guest equals the host's), detach and re-attach,
 * and a real loop device with an ext4 filesystem (root).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, readFileSync, truncateSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';

import { AgentClient } from '../../src/agent/client.js';
import { Vm, type VmConfig } from '../../src/vm/vm.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { bootProbe } from '../helpers/probe-vm.js';

async function probeVm(config: Partial<VmConfig> = {}): Promise<{ vm: Vm; agent: AgentClient }> {
  const vm = await bootProbe(config);
  return { vm, agent: new AgentClient(vm.agent, { timeoutMs: 60_000 }) };
}

/** A disk image of `bytes` random bytes. */
function randomImage(dir: string, name: string, bytes: number): { path: string; data: Buffer } {
  const path = join(dir, name);
  const data = randomBytes(bytes);
  writeFileSync(path, data);
  return { path, data };
}

describe('virtio end to end with the probe guest', skipUnless('the probe guest driving virtio devices', needs.kvm), () => {
  const vms: Vm[] = [];
  afterEach(async () => {
    for (const vm of vms.splice(0)) await vm.stop();
  });

  it('answers ping and echo over vm.agent, and errors for what it does not serve', async () => {
    const { vm, agent } = await probeVm();
    vms.push(vm);
    expect(await agent.ping()).toEqual({ agent: 'nodevisor-probe', version: 1, pid: 1 });
    expect(await agent.echo('hello "quoted" \\ world ✓')).toBe('hello "quoted" \\ world ✓');
    await expect(agent.request('container.create', { containerId: 'c' })).rejects.toMatchObject({ code: 'ENOTSUP' });
    await expect(agent.diskChecksum('nope', 0, 512)).rejects.toMatchObject({ code: 'ENOENT' });
    // Many requests in flight at once are answered, each with its own id.
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => agent.echo(`n${i}`)));
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => `n${i}`));
  });

  it('echoes 64 MiB through vm.agent byte-identical, and a request of the largest frame size', async () => {
    const { vm, agent } = await probeVm();
    vms.push(vm);
    const total = 64 << 20;
    const chunkBytes = 512 * 1024; // about 683 KiB of base64 per request
    const source = randomBytes(total);
    const back: Buffer[] = [];
    // Four requests in flight at a time, so both directions of the console stay busy.
    for (let offset = 0; offset < total; offset += 4 * chunkBytes) {
      const parts = [0, 1, 2, 3]
        .map((k) => offset + k * chunkBytes)
        .filter((start) => start < total)
        .map((start) => source.subarray(start, Math.min(total, start + chunkBytes)).toString('base64'));
      const replies = await Promise.all(parts.map((p) => agent.echo(p)));
      for (const r of replies) back.push(Buffer.from(r, 'base64'));
    }
    expect(Buffer.concat(back).equals(source)).toBe(true);
    // The largest legal request: a 1 MiB payload. Its reply is 2 bytes shorter and fits.
    const overhead = JSON.stringify({ id: 999_999, type: 'echo', data: '' }).length;
    const biggest = 'A'.repeat((1 << 20) - overhead);
    expect(await agent.echo(biggest)).toBe(biggest);
  }, 120_000);

  it('delivers what the guest wrote even when the VM stops before the host reads it', async () => {
    const { vm } = await probeVm();
    const stream = vm.agent;
    stream.pause();
    const body = Buffer.from(JSON.stringify({ id: 7, type: 'ping' }));
    const header = Buffer.alloc(4);
    header.writeUInt32LE(body.length);
    // The device tells the stream when guest output waits in it: wait for that (not for a
    // time window), then stop the VM before anything reads it.
    let replyWaiting = false;
    const onReadable = stream.onReadable.bind(stream);
    stream.onReadable = () => {
      replyWaiting = true;
      onReadable();
    };
    stream.write(Buffer.concat([header, body]));
    await until(() => replyWaiting, 'the probe to answer into the device');
    await vm.stop();
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    const ended = new Promise<void>((resolve) => stream.on('end', resolve));
    stream.resume();
    await ended;
    const all = Buffer.concat(chunks);
    expect(all.readUInt32LE(0)).toBe(all.length - 4);
    expect(JSON.parse(all.subarray(4).toString())).toMatchObject({ id: 7, type: 'ok', agent: 'nodevisor-probe' });
  });

  it('leaves the agent channel alone while the VM is paused, and serves it after resume', async () => {
    const { vm, agent } = await probeVm();
    vms.push(vm);
    await agent.ping();
    await vm.pause();
    let answered = false;
    const reply = agent.ping().then((r) => {
      answered = true;
      return r;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(answered).toBe(false);
    await vm.resume();
    expect(await reply).toMatchObject({ agent: 'nodevisor-probe' });
  });

  it('sees a disk hot-plugged while it runs, by serial, with the host\'s checksum', async () => {
    const dir = tempDir();
    const { vm, agent } = await probeVm({ hotplugSlots: 2 });
    vms.push(vm);
    const disk = randomImage(dir, 'rootfs.img', 1 << 20);
    expect(await vm.attachDisk({ path: disk.path, serial: 'ctr-hot-1' })).toBe(0);
    const ranges: Array<[number, number]> = [
      [0, 512],
      [0, 1 << 20],
      [1000, 77_777],
      [(1 << 20) - 3, 3],
    ];
    for (const [offset, length] of ranges) {
      expect(await agent.diskChecksum('ctr-hot-1', offset, length)).toBe(crc32(disk.data.subarray(offset, offset + length)));
    }
    await expect(agent.diskChecksum('ctr-hot-1', (1 << 20) - 10, 11)).rejects.toMatchObject({ code: 'EINVAL' });
    // Writes on the host are what the guest reads next (no stale cache in between).
    const fd = openSync(disk.path, 'r+');
    const patch = randomBytes(4096);
    writeSync(fd, patch, 0, patch.length, 8192);
    closeSync(fd);
    patch.copy(disk.data, 8192);
    expect(await agent.diskChecksum('ctr-hot-1', 8192, 4096)).toBe(crc32(patch));
  });

  it('detaches, then attaches another disk in the same slot', async () => {
    const dir = tempDir();
    const { vm, agent } = await probeVm({ hotplugSlots: 1 });
    vms.push(vm);
    const first = randomImage(dir, 'a.img', 64 * 1024);
    const second = randomImage(dir, 'b.img', 128 * 1024);
    const slot = await vm.attachDisk({ path: first.path, serial: 'first' });
    expect(await agent.diskChecksum('first', 0, 65536)).toBe(crc32(first.data));
    await vm.detachDisk(slot);
    await expect(agent.diskChecksum('first', 0, 512)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await vm.attachDisk({ path: second.path, serial: 'second', readOnly: true })).toBe(slot);
    expect(await agent.diskChecksum('second', 4096, 100_000)).toBe(crc32(second.data.subarray(4096, 104_096)));
  });

  it('reads a disk given at boot', async () => {
    const dir = tempDir();
    const disk = randomImage(dir, 'boot.img', 256 * 1024);
    const { vm, agent } = await probeVm({ disks: [{ path: disk.path, serial: 'boot-disk', readOnly: true }] });
    vms.push(vm);
    expect(await agent.diskChecksum('boot-disk', 0, 256 * 1024)).toBe(crc32(disk.data));
  });

  it('hot-plugs an ext4 filesystem on a loop device (root)', skipUnless('hot-plugging a loop device', needs.root), async () => {
    const dir = tempDir();
    const image = join(dir, 'ext4.img');
    writeFileSync(image, '');
    truncateSync(image, 8 << 20);
    execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'nodevisor', image]);
    const loop = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
    try {
      const { vm, agent } = await probeVm({ hotplugSlots: 1 });
      vms.push(vm);
      await vm.attachDisk({ path: loop, serial: 'ext4-loop' });
      // The ext4 superblock (1 KiB at offset 1024) as the guest reads it through the loop device.
      const superblock = readFileSync(image).subarray(1024, 2048);
      expect(await agent.diskChecksum('ext4-loop', 1024, 1024)).toBe(crc32(superblock));
      expect(superblock.readUInt16LE(0x38)).toBe(0xef53); // the ext4 magic, so the range is meaningful
      await vm.stop();
    } finally {
      execFileSync('losetup', ['-d', loop]);
    }
  });
});
