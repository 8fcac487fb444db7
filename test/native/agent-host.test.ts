/**
 * The guest agent, run on the host (DESIGN §6 tier 5's host half): the same static binary that
 * is the guest's /init, started by the test in a private mount namespace (`unshare --mount`),
 * talking over a socketpair (fd 3). Each container gets fresh mount, PID, UTS and IPC namespaces
 * from the agent. The rootfs is a real ext4 image on a loop device holding Debian's busybox-static.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MAX_FRAME_PAYLOAD } from '../../src/agent/frame.js';
import { AgentProcess, agentOnHost, agentPath } from '../helpers/agent-process.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { busyboxRootfsNeed, makeBusyboxImage } from '../helpers/busybox-rootfs.js';
import { tempDir } from '../helpers/tmp.js';

const agentNeeds = skipUnless('agent host-mode tests', agentOnHost);
const rootfsNeeds = skipUnless(
  'agent host-mode tests with a container rootfs',
  agentOnHost,
  needs.command('losetup'),
  busyboxRootfsNeed(),
);

/** Mount points (field 5 of mountinfo) at or under `dir`. */
function mountsUnder(lines: string[], dir: string): string[] {
  return lines.map((l) => l.split(' ')[4]!).filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Loop devices backed by `file` (other test files may use loop devices at the same time). */
function loopDevicesOf(file: string): string[] {
  return execFileSync('losetup', ['--associated', file, '--noheadings', '--output', 'NAME'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .sort();
}

describe('nodevisor-agent on the host: requests that need no container rootfs', agentNeeds, () => {
  let work: string;
  let agent: AgentProcess;

  beforeAll(() => {
    work = tempDir('nodevisor-agent-bare-');
    agent = new AgentProcess();
  });

  afterAll(async () => {
    await agent?.stop();
  });

  it('answers ping with its name, protocol version and pid', async () => {
    const pong = await agent.client.ping();
    expect(pong).toEqual({ agent: 'nodevisor-agent', version: 1, pid: agent.pid });
  });

  it('answers each malformed request with an error frame and keeps serving', async () => {
    // Paths for the checks that come before any mount: none of these requests gets that far.
    const rootfs = join(work, 'rootfs');
    const loop = '/dev/loop-never-used';
    const image = join(work, 'regular-file');
    mkdirSync(rootfs, { recursive: true });
    mkdirSync(join(work, 'tree'), { recursive: true });
    writeFileSync(image, 'not a block device');
    const c = agent.client;
    const cases: [string, object, string][] = [
      ['no.such.request', {}, 'EUNKNOWN'],
      ['container.create', { containerId: 'x', rootfs }, 'EINVAL'], // no process
      ['container.create', { rootfs, process: { args: ['true'] } }, 'EINVAL'], // no id
      ['container.create', { containerId: '../escape', rootfs, process: { args: ['true'] } }, 'EID'],
      ['container.create', { containerId: '.hidden', rootfs, process: { args: ['true'] } }, 'EID'],
      ['container.create', { containerId: 'a/b', rootfs, process: { args: ['true'] } }, 'EID'],
      ['container.create', { containerId: 'x', rootfs: 'relative/path', process: { args: ['true'] } }, 'EPATH'],
      ['container.create', { containerId: 'x', rootfs: `${rootfs}/../..`, process: { args: ['true'] } }, 'EPATH'],
      ['container.create', { containerId: 'x', rootfs, process: { args: ['true'], cwd: '/../../etc' } }, 'EPATH'],
      ['container.create', { containerId: 'x', rootfs, process: { args: [] } }, 'EINVAL'],
      ['container.create', { containerId: 'x', rootfs, process: { args: 'sh' } }, 'EINVAL'],
      ['container.create', { containerId: 'x', rootfs, process: { args: ['true'], env: ['NOEQUALS'] } }, 'EINVAL'],
      ['container.create', { containerId: 'x', rootfs, process: { args: ['true'], uid: -1 } }, 'EINVAL'],
      ['container.create', { containerId: 'x', rootfs, process: { args: ['a\u0000b'] } }, 'EINVAL'],
      ['container.create', { containerId: 'x', rootfs: join(work, 'nope'), process: { args: ['true'] } }, 'ENOENT'],
      ['container.start', { containerId: 'never-created' }, 'ENOENT'],
      ['container.wait', { containerId: 'never-created' }, 'ENOENT'],
      ['container.signal', { containerId: 'never-created', signal: 9 }, 'ENOENT'],
      ['container.signal', { containerId: 'x', signal: 0 }, 'EINVAL'],
      ['container.destroy', { containerId: 'never-created' }, 'ENOENT'],
      ['exec', { containerId: 'never-created', execId: 'e', process: { args: ['true'] } }, 'ENOENT'],
      ['stdin', { containerId: 'never-created', data: 'aGk=' }, 'ENOENT'],
      ['storage.mount', { device: loop, serial: 'both', fstype: 'ext4', mountPoint: join(work, 'm') }, 'EINVAL'],
      ['storage.mount', { device: loop, mountPoint: join(work, 'm') }, 'EINVAL'], // no fstype
      ['storage.mount', { device: loop, fstype: 'ext4' }, 'EINVAL'], // no mount point
      ['storage.mount', { device: loop, fstype: 'ext4', mountPoint: 'rel' }, 'EPATH'],
      ['storage.mount', { device: image, fstype: 'ext4', mountPoint: join(work, 'm') }, 'EINVAL'], // not a block device
      ['storage.mount', { serial: 'no-such-disk', fstype: 'ext4', mountPoint: join(work, 'm'), timeoutMs: 50 }, 'ETIMEDOUT'],
      ['storage.unmount', { mountPoint: join(work, 'tree') }, 'EINVAL'], // not a mount point
      ['storage.unmount', { mountPoint: join(work, 'missing') }, 'ENOENT'],
      ['time.sync', { sec: 1, nsec: 1_000_000_000 }, 'EINVAL'],
      ['rng.reseed', { data: 'not base64!' }, 'EINVAL'],
      ['echo', {}, 'EINVAL'],
    ];
    for (const [type, fields, code] of cases) {
      await expect(c.request(type, fields), `${type} ${JSON.stringify(fields)}`).rejects.toMatchObject({ code });
    }
    expect(await c.echo('still serving')).toBe('still serving');
  });

  it('answers undecodable frames with id-0 error frames, skips oversized ones, and stays in sync', async () => {
    const raw = (payload: Buffer) => {
      const header = Buffer.alloc(4);
      header.writeUInt32LE(payload.length);
      agent.socket.write(Buffer.concat([header, payload]));
    };
    const errorsBefore = agent.protocolErrors.length;
    raw(Buffer.from('{"id": 1, "type": "ping"'));                  // truncated JSON
    raw(Buffer.from('[1, 2, 3]'));                                // not an object
    raw(Buffer.from('{"type": "ping"}'));                         // no id
    raw(Buffer.from('{"id": -4, "type": "ping"}'));               // bad id
    raw(Buffer.from('{"id": 1.5, "type": "ping"}'));              // bad id
    // Each of these would be a valid ping with id 9 for a parser without that check: the agent
    // must refuse the frame (an id-0 error naming why), not answer the ping.
    raw(Buffer.from(`{"id": 9, "type": "ping", "x": ${'['.repeat(100)}${']'.repeat(100)}}`)); // too deep
    raw(Buffer.concat([Buffer.from('{"id": 9, "type": "ping", "'), Buffer.from([0xff, 0xfe]), Buffer.from('": 1}')])); // invalid UTF-8
    raw(Buffer.from('{"id": 9, "type": "ping", "type": "ping"}')); // duplicate keys
    // A header over the maximum, then its payload: skipped without being buffered.
    const big = Buffer.alloc(MAX_FRAME_PAYLOAD + 100, 0x20);
    raw(big);
    agent.socket.write(Buffer.from([0, 0, 0, 0])); // length 0
    expect(await agent.client.echo('after the junk')).toBe('after the junk');
    const errors = agent.protocolErrors.slice(errorsBefore);
    expect(errors.map((e) => e.code)).toEqual(['EBADFRAME', 'EBADFRAME', 'EBADFRAME', 'EBADFRAME', 'EBADFRAME', 'EBADFRAME', 'EBADFRAME', 'EBADFRAME', 'EFRAME', 'EFRAME']);
    const messages = errors.map((e) => e.message);
    expect(messages.some((m) => /unknown request id/.test(m))).toBe(false); // no ping 9 was answered
    expect(messages[5]).toMatch(/nesting deeper than 32/);
    expect(messages[6]).toMatch(/invalid UTF-8/);
    expect(messages[7]).toMatch(/duplicate key/);
  });

  it('reseeds the RNG with RNDADDENTROPY: accepted as root, refused (EPERM, naming the ioctl) without CAP_SYS_ADMIN', async () => {
    // The kernel's entropy count no longer moves (fixed at 256 since Linux 5.18), so the effect
    // shown is the ioctl itself: it succeeds for root, and in a user namespace (no
    // CAP_SYS_ADMIN in the initial one) the kernel refuses it and the agent says so.
    await agent.client.rngReseed(Buffer.alloc(64, 7), 0);
    await agent.client.rngReseed(Buffer.alloc(32, 9));
    const unprivileged = new AgentProcess([], ['--user', '--map-root-user', '--mount', '--propagation', 'private', agentPath]);
    try {
      await expect(unprivileged.client.rngReseed(Buffer.alloc(16, 1))).rejects.toMatchObject({
        code: 'EPERM',
        message: expect.stringContaining('RNDADDENTROPY'),
      });
      expect(await unprivileged.client.echo('still serving')).toBe('still serving');
    } finally {
      await unprivileged.stop();
    }
  });

  it('sets the wall clock on time.sync (moved 1 s ahead and back), and says when it may not', async () => {
    // CLOCK_REALTIME has no namespace: the agent run as root here sets the host's clock, so the
    // test moves it 1 s ahead and then back to the true time, measured against the monotonic
    // clock (performance.now), which time.sync does not touch. Offsets are compared with a
    // generous bound: only the request's own latency separates them from 1000 ms and 0 ms.
    const trueNow = () => performance.timeOrigin + performance.now();
    const offset = () => Date.now() - trueNow();
    const before = offset();
    try {
      await agent.client.timeSync(new Date(trueNow() + 1000));
      const ahead = offset() - before;
      expect(ahead).toBeGreaterThan(500);
      expect(ahead).toBeLessThan(1100);
    } finally {
      await agent.client.timeSync(new Date(trueNow() + before));
    }
    expect(Math.abs(offset() - before)).toBeLessThan(500);
    const unprivileged = new AgentProcess([], ['--user', '--map-root-user', '--mount', '--propagation', 'private', agentPath]);
    try {
      await expect(unprivileged.client.timeSync()).rejects.toMatchObject({ code: 'EPERM', message: expect.stringContaining('clock_settime') });
    } finally {
      await unprivileged.stop();
    }
  });

  it('refuses --boot when it is not PID 1', async () => {
    const refused = spawn(agentPath, ['--boot', '--channel-fd', '3'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    let stderr = '';
    refused.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => refused.once('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(stderr).toContain('--boot is for PID 1');
  });

});

describe('nodevisor-agent on the host (socketpair, loop-device rootfs)', rootfsNeeds, () => {
  let work: string;
  let image: string;
  let loop: string;
  let agent: AgentProcess;
  let rootfs: string;

  beforeAll(async () => {
    work = tempDir('nodevisor-agent-');
    image = makeBusyboxImage(work);
    loop = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
    agent = new AgentProcess();
    rootfs = join(work, 'mnt/rootfs');
    await agent.client.mountStorage({ device: loop, fstype: 'ext4', options: ['ro', 'nodev', 'errors=remount-ro'], mountPoint: rootfs });
  });

  afterAll(async () => {
    await agent?.stop();
    // A read-only mount marks the loop device read-only (BLKROSET), and that mark outlives
    // the agent and even the loop's detach: clear it so the next user of this loop is unaffected.
    if (loop) execFileSync('blockdev', ['--setrw', loop]);
    if (loop) execFileSync('losetup', ['-d', loop]);
  });

  it('mounted the loop device by path, with flags and data split as Kata does', () => {
    const line = agent.mountinfo().find((l) => l.split(' ')[4] === rootfs);
    expect(line).toBeDefined();
    const fields = line!.split(' ');
    expect(fields[5]).toContain('nodev'); // a flag
    expect(line).toMatch(/ - ext4 \/dev\/loop\d+ .*errors=remount-ro/); // data for the filesystem
    // A private mount namespace: the host does not see it.
    expect(mountsUnder(readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n'), rootfs)).toEqual([]);
    // `ro` also marks the block device read-only (BLKROSET): a hot-plugged disk the guest's
    // driver believes writable still refuses writes in the guest's own block layer.
    expect(execFileSync('blockdev', ['--getro', loop], { encoding: 'utf8' }).trim()).toBe('1');
  });

  it("runs sh -c 'echo $X; id -u; exit 3': output and exit code 3 arrive", async () => {
    const c = { containerId: 'echo-1' };
    const created = await agent.client.createContainer({
      ...c,
      rootfs,
      process: { args: ['sh', '-c', 'echo $X; id -u; exit 3'], env: ['X=hello from the host', 'PATH=/bin'], uid: 1234, gid: 99 },
    });
    expect(created.pid).toBeGreaterThan(1);
    await agent.client.startContainer(c.containerId);
    const status = await agent.client.wait(c);
    expect(status).toEqual({ exitCode: 3, signal: null });
    expect(agent.output(c)).toBe('hello from the host\n1234\n');
    expect(agent.exits).toContainEqual({ containerId: 'echo-1', exitCode: 3, signal: null });
    // The output came before the exit event.
    expect(agent.order.lastIndexOf('stdio:echo-1:stdout')).toBeLessThan(agent.order.indexOf('exit:echo-1'));
    await agent.client.destroyContainer(c.containerId);
  });

  it('puts the process in its own PID, UTS and mount namespaces, inside the rootfs, with a fresh /proc', async () => {
    const c = { containerId: 'ns-1' };
    await agent.client.createContainer({
      ...c,
      rootfs,
      hostname: 'box',
      process: { args: ['/bin/sh', '-c', 'echo pid=$$; hostname; cat /etc/marker; ls /proc | grep -c "^[0-9]"; pwd; ls /dev'], cwd: '/tmp' },
    });
    await agent.client.startContainer(c.containerId);
    expect(await agent.client.wait(c)).toEqual({ exitCode: 0, signal: null });
    const lines = agent.output(c).split('\n');
    expect(lines[0]).toBe('pid=1');
    expect(lines[1]).toBe('box');
    expect(lines[2]).toBe('inside the rootfs');
    expect(Number(lines[3])).toBeLessThanOrEqual(3); // only the container's own processes
    expect(lines[4]).toBe('/tmp');
    expect(lines.slice(5).join(' ')).toContain('null');
    await agent.client.destroyContainer(c.containerId);
  });

  it('streams stdin to the process', async () => {
    const c = { containerId: 'cat-1' };
    await agent.client.createContainer({ ...c, rootfs, process: { args: ['cat'] } });
    await agent.client.startContainer(c.containerId);
    await agent.client.writeStdin(c, Buffer.from('line one\n'));
    await agent.client.writeStdin(c, Buffer.from('line two\n'), true);
    expect(await agent.client.wait(c)).toEqual({ exitCode: 0, signal: null });
    expect(agent.output(c)).toBe('line one\nline two\n');
    await agent.client.destroyContainer(c.containerId);
  });

  it('signals a sleeping process (SIGKILL to the first process, SIGTERM to an exec)', async () => {
    const c = { containerId: 'sleep-1' };
    await agent.client.createContainer({ ...c, rootfs, process: { args: ['sleep', '1000'] } });
    await agent.client.startContainer(c.containerId);
    const e = { containerId: 'sleep-1', execId: 'sleeper' };
    await agent.client.exec(c.containerId, 'sleeper', { args: ['sleep', '1000'] });
    await agent.client.signal(e, 15);
    expect(await agent.client.wait(e)).toEqual({ exitCode: null, signal: 15 });
    await agent.client.signal(c, 9);
    expect(await agent.client.wait(c)).toEqual({ exitCode: null, signal: 9 });
    await expect(agent.client.signal(c, 9)).rejects.toMatchObject({ code: 'ESRCH' });
    await agent.client.destroyContainer(c.containerId);
  });

  it('execs a second process into the running container', async () => {
    const c = { containerId: 'exec-1' };
    await agent.client.createContainer({ ...c, rootfs, process: { args: ['sleep', '1000'] } });
    await agent.client.startContainer(c.containerId);
    const e = { containerId: 'exec-1', execId: 'second' };
    const { pid } = await agent.client.exec(c.containerId, 'second', {
      args: ['sh', '-c', 'echo $$; cat /proc/1/cmdline | tr "\\0" " "; echo; hostname; cat /etc/marker; echo oops >&2; exit 5'],
      uid: 7,
    });
    expect(pid).toBeGreaterThan(1);
    expect(await agent.client.wait(e)).toEqual({ exitCode: 5, signal: null });
    const lines = agent.output(e).split('\n');
    expect(Number(lines[0])).toBeGreaterThan(1); // a pid in the container's namespace
    expect(lines[1]).toBe('sleep 1000 ');
    expect(lines[2]).toBe('exec-1');
    expect(lines[3]).toBe('inside the rootfs');
    expect(agent.output(e, 'stderr')).toBe('oops\n');
    // An exec id is taken while its process runs, and free again once its exit was collected.
    await agent.client.exec(c.containerId, 'third', { args: ['sleep', '1000'] });
    await expect(agent.client.exec(c.containerId, 'third', { args: ['true'] })).rejects.toMatchObject({ code: 'EEXIST' });
    await agent.client.exec(c.containerId, 'second', { args: ['sh', '-c', 'echo again'] });
    expect(await agent.client.wait(e)).toEqual({ exitCode: 0, signal: null });
    await agent.client.destroyContainer(c.containerId);
    expect(agent.exits).toContainEqual({ containerId: 'exec-1', exitCode: null, signal: 9 });
  });

  it('reports a missing program at start and a missing cwd at create', async () => {
    await agent.client.createContainer({ containerId: 'noprog', rootfs, process: { args: ['/bin/does-not-exist'] } });
    await expect(agent.client.startContainer('noprog')).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('execve') });
    expect(await agent.client.wait({ containerId: 'noprog' })).toEqual({ exitCode: 127, signal: null });
    await agent.client.destroyContainer('noprog');
    await expect(
      agent.client.createContainer({ containerId: 'nocwd', rootfs, process: { args: ['true'], cwd: '/no/such/dir' } }),
    ).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('cwd') });
  });

  it('destroy leaves no mounts: only the rootfs storage mount remains, and unmount removes it', async () => {
    const before = mountsUnder(agent.mountinfo(), work);
    expect(before).toEqual([rootfs]);
    await agent.client.createContainer({ containerId: 'mounts-1', rootfs, process: { args: ['sleep', '1000'] } });
    await agent.client.startContainer('mounts-1');
    // Inside, the container has its own /proc and /dev mounts...
    await agent.client.exec('mounts-1', 'mi', { args: ['cat', '/proc/self/mountinfo'] });
    await agent.client.wait({ containerId: 'mounts-1', execId: 'mi' });
    const inside = agent.output({ containerId: 'mounts-1', execId: 'mi' });
    expect(inside).toMatch(/ \/proc rw,nosuid,nodev,noexec/);
    expect(inside).toMatch(/ \/dev /);
    // ...which never reach the agent's namespace.
    expect(mountsUnder(agent.mountinfo(), work)).toEqual([rootfs]);
    await agent.client.destroyContainer('mounts-1');
    expect(mountsUnder(agent.mountinfo(), work)).toEqual([rootfs]);
    expect(agent.children()).toBe('');
  });

  it('streams 24 MiB of output intact, and bounds its buffer while the host does not read', async () => {
    const c = { containerId: 'flood' };
    const total = 24 * 1024 * 1024;
    await agent.client.createContainer({ ...c, rootfs, process: { args: ['head', '-c', String(total), '/dev/zero'] } });
    agent.socket.pause(); // the host stops reading: the socketpair fills, then the agent's queue
    await agent.client.startContainer(c.containerId).catch(() => undefined); // answered after resume
    await new Promise((r) => setTimeout(r, 1000));
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))![1]);
    // The agent stops reading the pipe at a 4 MiB queue (plus one 64 KiB chunk and its base64).
    expect(rssKiB).toBeLessThan(24 * 1024);
    agent.socket.resume();
    expect(await agent.client.wait(c)).toEqual({ exitCode: 0, signal: null });
    const received = agent.stdio
      .filter((e) => e.containerId === 'flood' && e.stream === 'stdout' && e.data)
      .reduce((n, e) => n + e.data!.length, 0);
    expect(received).toBe(total);
    await agent.client.destroyContainer(c.containerId);
  });

  it('runs 50 containers in a row and leaks nothing (fds, mounts, loop devices, processes)', async () => {
    const fdsBefore = agent.fds().length;
    const mountsBefore = agent.mountinfo().length;
    const loopsBefore = loopDevicesOf(image);
    expect(loopsBefore).toEqual([loop]);
    for (let i = 0; i < 50; i++) {
      const containerId = `loop-${i}`;
      await agent.client.createContainer({ containerId, rootfs, process: { args: ['sh', '-c', `echo ${i}`] } });
      await agent.client.startContainer(containerId);
      if (i % 10 === 0) {
        await agent.client.exec(containerId, 'x', { args: ['true'] }).catch(() => undefined); // may race with exit
      }
      expect(await agent.client.wait({ containerId })).toEqual({ exitCode: 0, signal: null });
      await agent.client.destroyContainer(containerId);
      expect(agent.output({ containerId })).toBe(`${i}\n`);
    }
    expect(agent.fds().length).toBe(fdsBefore);
    expect(agent.mountinfo().length).toBe(mountsBefore);
    expect(loopDevicesOf(image)).toEqual(loopsBefore);
    expect(agent.children()).toBe('');
  });

  it('mounts a disk by serial once it appears, and times out for one that does not', async () => {
    // Serials come from /sys/block/<name>/serial in a guest; here a directory made by the test.
    const sysBlock = join(work, 'sys-block');
    mkdirSync(sysBlock);
    const second = new AgentProcess(['--sys-block', sysBlock]);
    try {
      const mountPoint = join(work, 'by-serial');
      const mounting = second.client.mountStorage({ serial: 'ctr-42', fstype: 'ext4', options: ['ro'], mountPoint, timeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 150));
      mkdirSync(join(sysBlock, basename(loop)));
      writeFileSync(join(sysBlock, basename(loop), 'serial'), 'ctr-42\n');
      expect(await mounting).toEqual({ device: loop, mountPoint });
      const line = second.mountinfo().find((l) => l.split(' ')[4] === mountPoint);
      expect(line?.split(' ')[5]).toMatch(/^ro,/);
      await expect(
        second.client.mountStorage({ serial: 'ctr-43', fstype: 'ext4', mountPoint: join(work, 'x'), timeoutMs: 100 }),
      ).rejects.toMatchObject({ code: 'ETIMEDOUT' });
      await second.client.unmountStorage(mountPoint);
      expect(mountsUnder(second.mountinfo(), work)).toEqual([]);
    } finally {
      await second.stop();
      rmSync(sysBlock, { recursive: true, force: true });
    }
  });

  it('works without pivot_root (MS_MOVE + chroot, for an initramfs root)', async () => {
    const third = new AgentProcess(['--no-pivot']);
    try {
      const mountPoint = join(work, 'no-pivot');
      await third.client.mountStorage({ device: loop, fstype: 'ext4', options: ['ro'], mountPoint });
      const c = { containerId: 'np' };
      await third.client.createContainer({ ...c, rootfs: mountPoint, process: { args: ['sh', '-c', 'cat /etc/marker; echo $$'] } });
      await third.client.startContainer('np');
      expect(await third.client.wait(c)).toEqual({ exitCode: 0, signal: null });
      expect(third.output(c)).toBe('inside the rootfs\n1\n');
      // The first process has ended and was waited for: no exec into it.
      await expect(third.client.exec('np', 'late', { args: ['true'] })).rejects.toMatchObject({ code: 'ESTATE' });
      await third.client.destroyContainer('np');
      await third.client.unmountStorage(mountPoint);
      expect(mountsUnder(third.mountinfo(), work)).toEqual([]);
    } finally {
      await third.stop();
    }
  });

  it('boots as PID 1 of a fresh namespace (--boot): proc, sys, dev, run mounted; modules list read; containers run without pivot_root', async () => {
    // A root like the initramfs: /init and a module list. No real module: finit_module here
    // would load it into the host's kernel.
    const initRoot = join(work, 'initroot');
    mkdirSync(join(initRoot, 'lib/modules'), { recursive: true });
    copyFileSync(agentPath, join(initRoot, 'init'));
    chmodSync(join(initRoot, 'init'), 0o755);
    writeFileSync(join(initRoot, 'lib/modules/nodevisor.list'), '# test\n/lib/modules/not-there.ko\n');
    const booted = new AgentProcess(['--boot'], ['--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', `--root=${initRoot}`, '/init']);
    try {
      const pong = await booted.client.ping();
      expect(pong.pid).toBe(1);
      booted.pidOverride = Number(readFileSync(`/proc/${booted.child.pid}/task/${booted.child.pid}/children`, 'utf8').trim());
      const mounts = new Map(booted.mountinfo().map((l) => [l.split(' ')[4]!, l.split(' - ')[1]!.split(' ')[0]!]));
      expect(mounts.get('/proc')).toBe('proc');
      expect(mounts.get('/sys')).toBe('sysfs');
      expect(mounts.get('/dev')).toBe('devtmpfs');
      expect(mounts.get('/run')).toBe('tmpfs');
      // The loop device is found through the agent's own devtmpfs.
      await booted.client.mountStorage({ device: loop, fstype: 'ext4', options: ['ro'], mountPoint: '/run/nodevisor/ctr' });
      const c = { containerId: 'booted' };
      await booted.client.createContainer({ ...c, rootfs: '/run/nodevisor/ctr', process: { args: ['sh', '-c', 'cat /etc/marker; echo $$; test -e /init && echo agent-root-visible || echo own-root'] } });
      await booted.client.startContainer('booted');
      expect(await booted.client.wait(c)).toEqual({ exitCode: 0, signal: null });
      expect(booted.output(c)).toBe('inside the rootfs\n1\nown-root\n');
      await booted.client.destroyContainer('booted');
      await booted.client.unmountStorage('/run/nodevisor/ctr');
    } finally {
      await booted.stop();
    }
  });

  it('takes the read-only mark off a device when it unmounts what it marked', async () => {
    execFileSync('blockdev', ['--setrw', loop]);
    const fifth = new AgentProcess();
    try {
      const mountPoint = join(work, 'ro-mark');
      await fifth.client.mountStorage({ device: loop, fstype: 'ext4', options: ['ro'], mountPoint });
      expect(execFileSync('blockdev', ['--getro', loop], { encoding: 'utf8' }).trim()).toBe('1');
      await fifth.client.unmountStorage(mountPoint);
      expect(execFileSync('blockdev', ['--getro', loop], { encoding: 'utf8' }).trim()).toBe('0');
    } finally {
      await fifth.stop();
      execFileSync('blockdev', ['--setro', loop]); // the suite's own rootfs mount is read-only
    }
  });

  it('kills its containers and exits when the host closes the channel', async () => {
    const fourth = new AgentProcess();
    const mountPoint = join(work, 'closing');
    await fourth.client.mountStorage({ device: loop, fstype: 'ext4', options: ['ro'], mountPoint });
    const { pid } = await fourth.client.createContainer({ containerId: 'orphan', rootfs: mountPoint, process: { args: ['sleep', '1000'] } });
    await fourth.client.startContainer('orphan');
    const exited = new Promise<number | null>((resolve) => fourth.child.once('exit', (code) => resolve(code)));
    fourth.socket.end();
    expect(await exited).toBe(0);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  });
});
