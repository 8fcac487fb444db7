/**
 * Tier 3: snapshots of a probe VM, restored into new VMs in this process (DESIGN §3, issue 12):
 * the guest goes on from where it stopped, clones are distinct, hot-plugged disks come back,
 * and bad snapshots are refused with errors that name the file, leaving nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';

import { AgentClient } from '../../src/agent/client.js';
import { encodeFrame } from '../../src/agent/frame.js';
import { PROBE_COUNTER_GPA, PROBE_GENERATION_GPA, ProbeCommand, probeGuestPath } from '../../src/guest/probe.js';
import { debugReadGuest, postWaitWord } from '../../src/testing.js';
import { MAX_RESTORE_AGENT_INPUT, Vm } from '../../src/vm/vm.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { shmTempDir, tempDir } from '../helpers/tmp.js';
import { bootProbe } from '../helpers/probe-vm.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fds = (): number => readdirSync('/proc/self/fd').length;
const threads = (): number => readdirSync('/proc/self/task').length;
const rssKiB = (): number =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? Number.NaN);


function counter(vm: Vm): bigint {
  return debugReadGuest(vm, PROBE_COUNTER_GPA, 8).readBigUInt64LE(0);
}

interface Generation {
  generation: string;
  asked: number;
}

function client(vm: Vm): AgentClient {
  return new AgentClient(vm.agent, { timeoutMs: 20_000 });
}

const generationOf = (agent: AgentClient): Promise<Generation> => agent.request<Generation>('probe.generation');

/** This process's mappings of `path` (a VM's guest memory mapped from a snapshot file). */
function mappingsOf(path: string): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.endsWith(path)).length;
}

/** Waits until `probe` is true, polling; fails after `ms`. */
async function until(probe: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('Vm snapshots', skipUnless('snapshot and restore probe VMs', needs.kvm), () => {
  const vms: Vm[] = [];
  afterEach(async () => {
    for (const vm of vms.splice(0)) await vm.stop();
  });

  /** A probe VM (16 MiB unless said) that answered probe.generation `asked` times, paused and snapshotted into `dir`. */
  async function askedSnapshot(asked: number, dir: string, config: { vcpus?: number; memoryMiB?: number } = {}): Promise<Vm> {
    const vm = await bootProbe({ memoryMiB: 16, ...config });
    vms.push(vm);
    const agent = client(vm);
    for (let i = 1; i <= asked; i++) expect((await generationOf(agent)).asked).toBe(i);
    await vm.pause();
    await vm.snapshot(dir);
    return vm;
  }

  /** A probe VM counting in a loop, paused and snapshotted into a new directory. */
  async function countingSnapshot(dir = tempDir()): Promise<{ dir: string; vm: Vm; saved: bigint }> {
    const vm = await bootProbe();
    vms.push(vm);
    postWaitWord(vm, ProbeCommand.count);
    await until(() => counter(vm) > 1000n, 'the guest counter to run');
    await vm.pause();
    const saved = counter(vm);
    await vm.snapshot(dir);
    return { dir, vm, saved };
  }

  it('a restored VM goes on counting from where the snapshot stopped', async () => {
    const { dir, vm, saved } = await countingSnapshot();
    expect(statSync(join(dir, 'memory')).size).toBe(64 << 20);

    const clone = await Vm.restore(dir, { paused: true });
    vms.push(clone);
    expect(clone.state).toBe('paused');
    // The clone's memory is the snapshot's: the counter stands where it was saved ...
    expect(counter(clone)).toBe(saved);
    await sleep(30);
    expect(counter(clone)).toBe(saved);
    // ... and once resumed, the guest's loop (restored registers, restored memory) goes on.
    await clone.resume();
    await until(() => counter(clone) > saved + 1000n, 'the restored counter to advance');
    // The original is untouched by its clone running (copy-on-write, not shared memory).
    expect(counter(vm)).toBe(saved);
    await vm.resume();
    await until(() => counter(vm) > saved, 'the original to go on too');
  });

  it('a clone can be snapshotted in turn (its own pages and the file it maps), as a sparse image', async () => {
    const first = tempDir();
    const second = tempDir();
    const vm = await bootProbe({ vcpus: 2 });
    vms.push(vm);
    postWaitWord(vm, ProbeCommand.count);
    await until(() => counter(vm) > 1000n, 'the guest counter to run');
    await vm.pause();
    await vm.snapshot(first);
    await vm.stop();

    const clone = await Vm.restore(first);
    vms.push(clone);
    const fromFirst = counter(clone);
    await until(() => counter(clone) > fromFirst + 1000n, 'the clone to count');
    await clone.pause();
    const saved = counter(clone);
    await clone.snapshot(second);
    // Only pages that hold data are written: a 64 MiB guest that touched a few pages takes a few
    // hundred KiB on disk, not 64 MiB.
    expect(statSync(join(second, 'memory')).size).toBe(64 << 20);
    expect(statSync(join(second, 'memory')).blocks * 512).toBeLessThan(4 << 20);

    const grandchild = await Vm.restore(second, { paused: true });
    vms.push(grandchild);
    expect(counter(grandchild)).toBe(saved);
    await grandchild.resume();
    await until(() => counter(grandchild) > saved + 1000n, 'the second-generation clone to count');
    expect(new Set([vm.generation, clone.generation, grandchild.generation]).size).toBe(3);
  });

  it('a restore maps the memory file instead of copying it', async () => {
    const dir = tempDir();
    const vm = await bootProbe({ memoryMiB: 256 });
    vms.push(vm);
    await vm.pause();
    await vm.snapshot(dir);
    await vm.stop();
    // 64 MiB of data where the probe never looks (128-192 MiB): a copy would have to read it all.
    const fd = openSync(join(dir, 'memory'), 'r+');
    const chunk = Buffer.alloc(1 << 20, 0xab);
    for (let mib = 128; mib < 192; mib++) writeSync(fd, chunk, 0, chunk.length, mib << 20);
    closeSync(fd);

    const before = rssKiB();
    const clones = [await Vm.restore(dir), await Vm.restore(dir), await Vm.restore(dir)];
    vms.push(...clones);
    for (const clone of clones) expect(await client(clone).ping()).toMatchObject({ agent: 'nodevisor-probe' });
    // Three clones of a snapshot holding 64 MiB of data cost far less than one copy of it: only
    // the pages a clone touches come in.
    expect(rssKiB() - before).toBeLessThan(32 * 1024);
    // And the data is there, read through each clone's own mapping of the file.
    for (const clone of clones) expect(debugReadGuest(clone, (150 << 20) + 12345, 16)).toEqual(Buffer.alloc(16, 0xab));
  });

  it('a restored VM has a fresh agent channel, its own generation, and goes on counting requests', async () => {
    const dir = tempDir();
    const vm = await bootProbe();
    vms.push(vm);
    const agent = client(vm);
    for (let i = 1; i <= 3; i++) expect((await generationOf(agent)).asked).toBe(i);
    const original = await generationOf(agent);
    expect(original).toEqual({ generation: vm.generation, asked: 4 });
    await vm.pause();
    await vm.snapshot(dir);

    const clone = await Vm.restore(dir);
    vms.push(clone);
    expect(clone.state).toBe('running');
    expect(clone.generation).not.toBe(vm.generation);
    // Where the probe reads it (its ELF note's address): each VM's own id, the clone's included.
    expect(debugReadGuest(clone, PROBE_GENERATION_GPA, 8).readBigUInt64LE(0)).toBe(BigInt(`0x${clone.generation}`));
    expect(debugReadGuest(vm, PROBE_GENERATION_GPA, 8).readBigUInt64LE(0)).toBe(BigInt(`0x${vm.generation}`));
    const cloneAgent = client(clone);
    expect(await cloneAgent.ping()).toMatchObject({ agent: 'nodevisor-probe' });
    expect(await generationOf(cloneAgent)).toEqual({ generation: clone.generation, asked: 5 });
    // The template goes on with its own id and its own count.
    await vm.resume();
    expect(await generationOf(agent)).toEqual({ generation: vm.generation, asked: 5 });
  });

  it('agentInput is in the guest\'s agent channel when it starts: the clone answers it with nothing written after', async () => {
    const dir = tempDir();
    const vm = await bootProbe({ memoryMiB: 16 });
    vms.push(vm);
    expect((await generationOf(client(vm))).asked).toBe(1);
    await vm.pause();
    await vm.snapshot(dir);
    for (const paused of [false, true]) {
      const request = encodeFrame({ id: 1, type: 'probe.generation' });
      const clone = await Vm.restore(dir, { paused, agentInput: request });
      vms.push(clone);
      const agent = client(clone);
      const answer = agent.adopt<Generation>(1, 'probe.generation');
      if (paused) await clone.resume(); // delivered before the resume, answered after it
      expect(await answer).toEqual({ generation: clone.generation, asked: 2 });
      expect(await generationOf(agent)).toEqual({ generation: clone.generation, asked: 3 });
    }
  });

  it('agentInput that is not bytes, or too big, is refused before anything is built', async () => {
    const dir = tempDir();
    await expect(Vm.restore(dir, { agentInput: 'ping' as never })).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('agentInput must be a Uint8Array') });
    await expect(Vm.restore(dir, { agentInput: Buffer.alloc(MAX_RESTORE_AGENT_INPUT + 1) })).rejects.toMatchObject({
      code: 'EINVAL',
      message: expect.stringContaining(`over the ${MAX_RESTORE_AGENT_INPUT} maximum`),
    });
  });

  it('100 clones of one snapshot each answer ping and report distinct generations', async () => {
    const dir = tempDir();
    const template = await bootProbe({ memoryMiB: 32 });
    vms.push(template);
    await template.pause();
    await template.snapshot(dir);
    const seen = new Set<string>([template.generation]);
    for (let batch = 0; batch < 10; batch++) {
      const clones = await Promise.all(Array.from({ length: 10 }, () => Vm.restore(dir)));
      try {
        const reports = await Promise.all(
          clones.map(async (clone) => {
            const agent = client(clone);
            expect(await agent.ping()).toMatchObject({ agent: 'nodevisor-probe' });
            const report = await generationOf(agent);
            expect(report).toEqual({ generation: clone.generation, asked: 1 });
            return report.generation;
          }),
        );
        for (const generation of reports) {
          expect(seen.has(generation)).toBe(false);
          seen.add(generation);
        }
      } finally {
        await Promise.all(clones.map((clone) => clone.stop()));
      }
    }
    expect(seen.size).toBe(101);
  }, 120_000);

  it('a snapshot with hot-plugged disks restores them in their slots, with the same contents', async () => {
    const dir = tempDir();
    const disks = tempDir();
    const first = join(disks, 'first.img');
    const second = join(disks, 'second.img');
    const data = randomBytes(256 * 1024);
    writeFileSync(first, randomBytes(4096));
    writeFileSync(second, data);
    const vm = await bootProbe({ hotplugSlots: 3 });
    vms.push(vm);
    const agent = client(vm);
    expect(await vm.attachDisk({ path: first, serial: 'first' })).toBe(0);
    expect(await vm.attachDisk({ path: second, serial: 'ctr-second', readOnly: true })).toBe(1);
    await vm.detachDisk(0); // slot 0 empty, slot 1 holds a disk: slots must come back as they were
    expect(await agent.diskChecksum('ctr-second', 0, data.length)).toBe(crc32(data));
    await vm.pause();
    await vm.snapshot(dir);

    const clone = await Vm.restore(dir);
    vms.push(clone);
    const cloneAgent = client(clone);
    expect(await cloneAgent.diskChecksum('ctr-second', 0, data.length)).toBe(crc32(data));
    expect(await cloneAgent.diskChecksum('ctr-second', 1000, 5000)).toBe(crc32(data.subarray(1000, 6000)));
    await expect(cloneAgent.diskChecksum('first', 0, 512)).rejects.toMatchObject({ code: 'ENOENT' });
    // The free slots are 0 and 2, as in the VM that was saved; slot 1 holds `second` (the
    // clone refuses it writable a second time: the same file is attached already).
    expect(await clone.attachDisk({ path: first, serial: 'first-again' })).toBe(0);
    await expect(clone.attachDisk({ path: second, serial: 'x' })).rejects.toMatchObject({ code: 'EBUSY' });
    expect(await clone.attachDisk({ path: second, serial: 'ro-again', readOnly: true })).toBe(2);
  });

  it('a disk given at boot is opened again by path, with what the host wrote since', async () => {
    const dir = tempDir();
    const image = join(tempDir(), 'boot.img');
    const data = randomBytes(128 * 1024);
    writeFileSync(image, data);
    const vm = await bootProbe({ disks: [{ path: image, serial: 'boot-disk', readOnly: true }] });
    vms.push(vm);
    expect(await client(vm).diskChecksum('boot-disk', 0, data.length)).toBe(crc32(data));
    await vm.pause();
    await vm.snapshot(dir);
    await vm.stop();
    // The disk is host state, not part of the snapshot: the clone reads the file as it is now.
    const patch = randomBytes(4096);
    patch.copy(data, 8192);
    writeFileSync(image, data);
    const clone = await Vm.restore(dir);
    vms.push(clone);
    expect(await client(clone).diskChecksum('boot-disk', 0, data.length)).toBe(crc32(data));
  });

  it('refuses to snapshot a running VM, and writes nothing', async () => {
    const dir = join(tempDir(), 'snap');
    const vm = await bootProbe();
    vms.push(vm);
    await expect(vm.snapshot(dir)).rejects.toMatchObject({
      name: 'NodevisorError',
      code: 'EBUSY',
      message: expect.stringContaining('cannot snapshot a VM that is running: pause it first'),
    });
    expect(() => statSync(dir)).toThrow();
  });

  it('bad restore arguments and a missing snapshot give clear errors', async () => {
    await expect(Vm.restore('')).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('dir') });
    await expect(Vm.restore(tempDir(), { memoryMiB: 64 } as never)).rejects.toMatchObject({
      code: 'EINVAL',
      message: expect.stringContaining('option memoryMiB cannot be given'),
    });
    const missing = join(tempDir(), 'nothing-here');
    await expect(Vm.restore(missing)).rejects.toMatchObject({ code: 'ENOENT', path: join(missing, 'state') });
  });

  describe('prepared restores (Vm.prepareRestore)', () => {
    /** Waits for the restore being prepared (Vm.drainTeardown settles the spare threads). */
    const settled = () => Vm.drainTeardown();

    it('the next restore of the directory takes the prepared one, which behaves like any restore', async () => {
      const { dir, saved } = await countingSnapshot();
      const memory = join(dir, 'memory');

      Vm.prepareRestore(dir);
      await settled();
      expect(mappingsOf(memory)).toBe(1); // the prepared restore maps the file already
      // Its vCPU thread is there, parked: the guest does not run before the restore is taken.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const clone = await Vm.restore(dir, { paused: true });
      vms.push(clone);
      expect(counter(clone)).toBe(saved);
      await clone.resume();
      await until(() => counter(clone) > saved + 1000n, 'the clone to go on counting');
      await settled();
      // One prepare, one prepared restore: the clone's mapping only, nothing made behind it.
      expect(mappingsOf(memory)).toBe(1);
      await clone.stop();
      await settled();
      expect(mappingsOf(memory)).toBe(0);
    });

    /** Restores a prepared counting snapshot in `dir` paused: the prepared VM, taken after the file check. */
    async function pausedRestoreAfterCheck(dir: string): Promise<void> {
      const { saved } = await countingSnapshot(dir);
      Vm.prepareRestore(dir);
      await settled();
      const before = Vm.restoreCounts();
      const clone = await Vm.restore(dir, { paused: true });
      vms.push(clone);
      expect(Vm.restoreCounts()).toEqual({ ...before, takenAfterCheck: before.takenAfterCheck + 1 });
      expect(counter(clone)).toBe(saved);
    }

    it('on a disk filesystem, the restore compares the files before it takes the prepared VM', async () => {
      await pausedRestoreAfterCheck(tempDir()); // not tmpfs here
    });

    describe('on tmpfs', skipUnless('restores prepared on tmpfs', needs.shmTmpfs), () => {
      it('a running restore takes the prepared VM at once; the guest goes on from the snapshot and answers its first request', async () => {
        const dir = shmTempDir();
        await askedSnapshot(1, dir);
        Vm.prepareRestore(dir);
        await settled();
        const before = Vm.restoreCounts();
        const request = encodeFrame({ id: 7, type: 'probe.generation' });
        const clone = await Vm.restore(dir, { agentInput: request });
        vms.push(clone);
        expect(Vm.restoreCounts()).toEqual({ ...before, takenNow: before.takenNow + 1 });
        const agent = client(clone);
        // Its second request ever (the template answered the first): it went on from the snapshot.
        expect(await agent.adopt<Generation>(7, 'probe.generation')).toEqual({ generation: clone.generation, asked: 2 });
        expect(clone.state).toBe('running');
        // One prepare, one spare: the next restore of the directory assembles its own VM.
        const other = await Vm.restore(dir);
        vms.push(other);
        expect(Vm.restoreCounts().assembled).toBe(before.assembled + 1);
        expect(await generationOf(client(other))).toEqual({ generation: other.generation, asked: 2 });
      });

      it('a file touched after the prepare is noticed without a stat: the restore checks, and takes the long way', async () => {
        const { dir, saved } = await countingSnapshot(shmTempDir());
        Vm.prepareRestore(dir);
        await settled();
        const state = join(dir, 'state');
        const { atime, mtime } = statSync(state);
        utimesSync(state, atime, new Date(mtime.getTime() + 1000)); // same bytes, another mtime
        const before = Vm.restoreCounts();
        const clone = await Vm.restore(dir);
        vms.push(clone);
        expect(Vm.restoreCounts()).toEqual({ ...before, assembled: before.assembled + 1 });
        await until(() => counter(clone) > saved, 'the clone to go on counting');
        await settled();
        expect(mappingsOf(join(dir, 'memory'))).toBe(1); // the clone's; the stale one was released
      });

      it('a paused restore takes the prepared VM after the file check, on a worker', async () => {
        await pausedRestoreAfterCheck(shmTempDir());
      });

      it('a clone paused at once and snapshotted holds the restored state (its timers loaded by the snapshot if vCPU 0 had not yet)', async () => {
        const { dir, saved } = await countingSnapshot(shmTempDir());
        Vm.prepareRestore(dir);
        await settled();
        const clone = await Vm.restore(dir);
        vms.push(clone);
        await clone.pause();
        const again = shmTempDir();
        await clone.snapshot(again);
        const restored = await Vm.restore(again);
        vms.push(restored);
        expect(counter(restored)).toBeGreaterThanOrEqual(saved);
        await until(() => counter(restored) > saved + 1000n, 'the second-generation clone to go on counting');
      });

      it('a directory replaced by renames after the prepare is noticed, again and again: each restore is of the new snapshot', async () => {
        const parent = shmTempDir();
        const dir = join(parent, 'snap');
        await askedSnapshot(1, dir);
        for (const [round, asked] of [3, 5].entries()) {
          Vm.prepareRestore(dir); // the second round's spare is of the directory swapped in by the first
          await settled();
          await askedSnapshot(asked, join(parent, 'next'));
          renameSync(dir, join(parent, `old-${round}`));
          renameSync(join(parent, 'next'), dir);
          const before = Vm.restoreCounts();
          const clone = await Vm.restore(dir);
          vms.push(clone);
          expect(Vm.restoreCounts().takenNow).toBe(before.takenNow); // not taken at once
          expect(await generationOf(client(clone))).toEqual({ generation: clone.generation, asked: asked + 1 });
        }
      });

      it('a directory named through a symlink is not taken at once (the watch and the path could drift apart)', async () => {
        const { dir, saved } = await countingSnapshot(shmTempDir());
        const link = join(shmTempDir(), 'link');
        symlinkSync(dir, link);
        Vm.prepareRestore(link);
        await settled();
        const before = Vm.restoreCounts();
        const clone = await Vm.restore(link);
        vms.push(clone);
        expect(Vm.restoreCounts()).toEqual({ ...before, takenAfterCheck: before.takenAfterCheck + 1 });
        expect(counter(clone)).toBeGreaterThanOrEqual(saved);
      });

      it('a 2-vCPU clone taken at once can be paused right away, and resumed, and answers', async () => {
        const dir = shmTempDir();
        await askedSnapshot(1, dir, { vcpus: 2 });
        for (let round = 0; round < 20; round++) {
          Vm.prepareRestore(dir);
          await settled();
          const clone = await Vm.restore(dir);
          vms.push(clone);
          await clone.pause(); // vCPU 0 may not have loaded the state yet: nothing may hang
          expect(clone.state).toBe('paused');
          await clone.resume();
          expect(await generationOf(client(clone))).toMatchObject({ generation: clone.generation });
          await clone.stop();
          vms.splice(vms.indexOf(clone), 1);
        }
      });

      it('a 2-vCPU snapshot: the other vCPU waits for vCPU 0 to load the state, and the clone answers', async () => {
        const dir = shmTempDir();
        const vm = await askedSnapshot(1, dir, { vcpus: 2, memoryMiB: 128 });
        await vm.stop();
        vms.splice(vms.indexOf(vm), 1);
        Vm.prepareRestore(dir);
        await settled();
        const before = Vm.restoreCounts();
        const clone = await Vm.restore(dir);
        vms.push(clone);
        expect(Vm.restoreCounts().takenNow).toBe(before.takenNow + 1);
        expect(await generationOf(client(clone))).toMatchObject({ generation: clone.generation });
        const threadsBefore = threads();
        await clone.stop();
        expect(threads()).toBeLessThanOrEqual(threadsBefore - 2); // both vCPU threads joined
      });
    });

    it('a snapshot written again after the prepare is restored from its new files', async () => {
      const dir = tempDir();
      await askedSnapshot(1, dir);
      Vm.prepareRestore(dir);
      await settled();
      await askedSnapshot(3, dir); // new files renamed into place: the prepared restore is stale
      const clone = await Vm.restore(dir);
      vms.push(clone);
      expect(await generationOf(client(clone))).toEqual({ generation: clone.generation, asked: 4 });
      await settled();
      expect(mappingsOf(join(dir, 'memory'))).toBe(1); // the clone's; the stale one was released
    });

    it('forgetSnapshot releases the prepared restore, its fds and mapping', async () => {
      const dir = tempDir();
      const vm = await bootProbe({ memoryMiB: 16 });
      vms.push(vm);
      await vm.pause();
      await vm.snapshot(dir);
      await settled();
      const before = fds();
      Vm.prepareRestore(dir);
      await settled();
      const threadsPrepared = threads();
      expect(mappingsOf(join(dir, 'memory'))).toBe(1);
      expect(fds()).toBeGreaterThan(before); // the memory file, the VM, its vCPU, the devices' eventfds
      await Vm.forgetSnapshot(dir);
      expect(mappingsOf(join(dir, 'memory'))).toBe(0);
      expect(fds()).toBe(before);
      // Its parked vCPU thread and its device worker are gone too.
      expect(threads()).toBeLessThanOrEqual(threadsPrepared - 2);
      await Vm.forgetSnapshot(dir); // nothing left to forget: not an error
      await Vm.forgetSnapshot(join(tempDir(), 'never-prepared'));
    });

    it('preparing a missing or bad snapshot leaves the error to the restore, and nothing behind', async () => {
      const missing = join(tempDir(), 'nothing-here');
      await settled();
      const before = { fds: fds(), threads: threads() };
      Vm.prepareRestore(missing);
      await settled();
      await expect(Vm.restore(missing)).rejects.toMatchObject({ code: 'ENOENT', path: join(missing, 'state') });

      const bad = tempDir();
      const vm = await bootProbe({ memoryMiB: 16 });
      vms.push(vm);
      await vm.pause();
      await vm.snapshot(bad);
      truncateSync(join(bad, 'memory'), 4096);
      Vm.prepareRestore(bad);
      await settled();
      await expect(Vm.restore(bad)).rejects.toMatchObject({ code: 'EBADSNAPSHOT', path: join(bad, 'memory') });
      await vm.stop();
      vms.splice(vms.indexOf(vm), 1);
      await settled();
      expect(fds()).toBe(before.fds);
      // The preparing thread, started by the first prepare in this process, may be new.
      expect(threads()).toBeLessThanOrEqual(before.threads + 1);
      expect(mappingsOf(join(bad, 'memory'))).toBe(0);
    });

    it('bad arguments are refused', async () => {
      expect(() => Vm.prepareRestore('')).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('dir') }));
      expect(() => Vm.prepareRestore('a\0b')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      await expect(Vm.forgetSnapshot('')).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('dir') });
    });
  });

  describe('bad snapshots', () => {
    let good = '';
    let kernelPathBytes = 0;

    /** A copy of the good snapshot, with `damage` applied to it. */
    function damaged(damage: (dir: string) => void): string {
      const dir = tempDir();
      for (const name of ['state', 'memory']) writeFileSync(join(dir, name), readFileSync(join(good, name)));
      damage(dir);
      return dir;
    }

    /** Restoring `dir` fails with EBADSNAPSHOT naming `file` and `what`; nothing is left behind. */
    async function refused(dir: string, file: string, what: string): Promise<void> {
      await Vm.drainTeardown();
      const before = { fds: fds(), threads: threads() };
      const err = await Vm.restore(dir).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'NodevisorError', code: 'EBADSNAPSHOT', path: join(dir, file) });
      expect((err as Error).message).toContain(join(dir, file));
      expect((err as Error).message).toContain(what);
      await Vm.drainTeardown(); // the prewarm thread replaces a spare VM a restore took
      expect(fds()).toBe(before.fds);
      expect(threads()).toBe(before.threads);
      expect(mappingsOf(join(dir, 'memory'))).toBe(0);
    }

    it('prepare a good snapshot (and see it restore)', async () => {
      good = tempDir();
      const vm = await bootProbe({ memoryMiB: 16 });
      vms.push(vm);
      await vm.pause();
      await vm.snapshot(good);
      kernelPathBytes = Buffer.byteLength(probeGuestPath());
      const clone = await Vm.restore(good); // also warms up the libuv pool before counting threads
      vms.push(clone);
      expect(await client(clone).ping()).toMatchObject({ agent: 'nodevisor-probe' });
    });

    it('a corrupted state file', async () => {
      const dir = damaged((d) => {
        const state = readFileSync(join(d, 'state'));
        state.writeUInt8(state.readUInt8(state.length - 100) ^ 0x40, state.length - 100);
        writeFileSync(join(d, 'state'), state);
      });
      await refused(dir, 'state', 'corrupted (checksum mismatch)');
    });

    it('a truncated state file', async () => {
      const dir = damaged((d) => truncateSync(join(d, 'state'), statSync(join(d, 'state')).size - 10));
      await refused(dir, 'state', 'truncated');
      const tiny = damaged((d) => truncateSync(join(d, 'state'), 20));
      await refused(tiny, 'state', 'truncated');
    });

    it('a truncated memory file', async () => {
      const dir = damaged((d) => truncateSync(join(d, 'memory'), (16 << 20) - 4096));
      await refused(dir, 'memory', 'truncated');
    });

    it('not a state file, and a state file of another format version', async () => {
      const notOne = damaged((d) => writeFileSync(join(d, 'state'), Buffer.from('{"this":"is json, not a snapshot"}')));
      await refused(notOne, 'state', 'bad magic');
      const future = damaged((d) => {
        const state = readFileSync(join(d, 'state'));
        state.writeUInt32LE(99, 8);
        writeFileSync(join(d, 'state'), state);
      });
      await refused(future, 'state', 'format version 99 is not supported');
    });

    it('a VM state of payload version 1 (before net slots were recorded): take it again', async () => {
      const old = damaged((d) => {
        const state = readFileSync(join(d, 'state'));
        state.writeUInt32LE(1, 32 + 4); // after the payload's tag
        state.writeUInt32LE(crc32(state.subarray(32)), 24);
        writeFileSync(join(d, 'state'), state);
      });
      await refused(old, 'state', 'VM state version 1 is from an older nodevisor (before net slots were recorded): take the snapshot again');
    });

    it('a snapshot from a host CPU with another XSAVE size (checksum made to match)', async () => {
      const dir = damaged((d) => {
        const state = readFileSync(join(d, 'state'));
        // Payload (docs/snapshot-format.md): tag, version, memory, vcpus, slots, net slots, 4 flags,
        // timeout, kernel path, initrd, cmdline (empty), boot disk count (0), then the XSAVE size.
        const at = 32 + 4 + 4 + 8 + 4 + 4 + 4 + 4 + 8 + (4 + kernelPathBytes) + 4 + 4 + 4;
        state.writeUInt32LE(state.readUInt32LE(at) + 64, at);
        state.writeUInt32LE(crc32(state.subarray(32)), 24);
        writeFileSync(join(d, 'state'), state);
      });
      await refused(dir, 'state', 'XSAVE area is');
    });

    it('a VM generation address that is not aligned (checksum made to match)', async () => {
      const dir = damaged((d) => {
        const state = readFileSync(join(d, 'state'));
        const tag = state.indexOf(Buffer.from('VGEN')); // the VM generation device's blob: tag, version 2, value, address
        expect(tag).toBeGreaterThan(32);
        expect(state.readUInt32LE(tag + 4)).toBe(2);
        expect(state.readBigUInt64LE(tag + 16)).toBe(BigInt(PROBE_GENERATION_GPA));
        state.writeBigUInt64LE(BigInt(PROBE_GENERATION_GPA + 4), tag + 16);
        state.writeUInt32LE(crc32(state.subarray(32)), 24);
        writeFileSync(join(d, 'state'), state);
      });
      await refused(dir, 'state', 'the VM generation address is not 8-byte aligned');
    });

    it('a hot-plugged disk that is gone: the error names it, nothing is left behind', async () => {
      const dir = tempDir();
      const image = join(tempDir(), 'gone.img');
      writeFileSync(image, randomBytes(4096));
      const vm = await bootProbe({ memoryMiB: 16, hotplugSlots: 1 });
      vms.push(vm);
      await vm.attachDisk({ path: image, serial: 'gone' });
      await vm.pause();
      await vm.snapshot(dir);
      rmSync(image);
      await Vm.drainTeardown();
      const before = { fds: fds(), threads: threads() };
      await expect(Vm.restore(dir)).rejects.toMatchObject({ code: 'ENOENT', path: image });
      await Vm.drainTeardown(); // the prewarm thread replaces the spare VM the restore took
      expect(fds()).toBe(before.fds);
      expect(threads()).toBe(before.threads);
      expect(mappingsOf(join(dir, 'memory'))).toBe(0);
    });
  });
});
