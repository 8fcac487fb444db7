/**
 * The guest agent against a hostile container and hostile input (issue 10, "the guest agent"):
 * the agent runs on the host (test/helpers/agent-process.ts) in a private mount namespace; the
 * containers are real ones (mount, PID, UTS, IPC namespaces) over a busybox directory tree, and
 * the disks are ext4 images on loop devices.
 *
 * Run against an older agent with NODEVISOR_AGENT=<path> to see which defects it has.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NodevisorError } from '../../src/errors.js';
import { AgentProcess, agentOnHostNeed } from '../helpers/agent-process.js';
import { busyboxRootfsNeed, makeBusyboxImage } from '../helpers/busybox-rootfs.js';
import { needs } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

const canRun =
  agentOnHostNeed('agent security tests') &&
  needs.command('losetup').report('agent security tests') &&
  busyboxRootfsNeed().report('agent security tests');
const canCompile = needs.command('gcc').report('the exec race test (builds its attacker)');

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/agent-security');

/** Builds a fixture C program statically into the rootfs tree's /bin. */
function buildIntoRootfs(tree: string, name: string): string {
  execFileSync('gcc', ['-static', '-O2', '-Wall', '-o', join(tree, 'bin', name), join(fixtures, `${name}.c`)]);
  return `/bin/${name}`;
}

/** A loop device over a new `size` file at `path`, ext4-formatted unless `format` is false. */
function loopImage(path: string, size: string, format = true): string {
  execFileSync('truncate', ['-s', size, path]);
  if (format) execFileSync('mkfs.ext4', ['-q', '-F', path]);
  return execFileSync('losetup', ['--find', '--show', path], { encoding: 'utf8' }).trim();
}

function blockdevReadOnly(device: string): boolean {
  return execFileSync('blockdev', ['--getro', device], { encoding: 'utf8' }).trim() === '1';
}

describe.skipIf(!canRun)('nodevisor-agent against hostile containers and input', () => {
  let work: string;
  let tree: string; // the busybox directory tree: containers' rootfs
  let agent: AgentProcess;
  const loops: string[] = [];

  beforeAll(() => {
    work = tempDir('nodevisor-agent-sec-');
    makeBusyboxImage(work);
    tree = join(work, 'tree');
    agent = new AgentProcess();
  });

  afterAll(async () => {
    await agent?.stop();
    for (const loop of loops) {
      execFileSync('blockdev', ['--setrw', loop]);
      execFileSync('losetup', ['-d', loop]);
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it.skipIf(!canCompile)(
    'exec race (defect 1): a root process in the container grabbing fds of each new pid finds no agent fd in 10,000 attempts',
    async () => {
      const grab = buildIntoRootfs(tree, 'pidfd_grab');
      const c = { containerId: 'race' };
      // PID 1 of the container is the attacker, with every capability (CAP_SYS_PTRACE included).
      await agent.client.createContainer({ ...c, rootfs: tree, process: { args: [grab, '10000'] } });
      await agent.client.startContainer(c.containerId);
      let attackerDone = false;
      const attacker = agent.client.wait(c).finally(() => (attackerDone = true));
      let execs = 0;
      while (!attackerDone && execs < 3000) {
        const ref = { containerId: c.containerId, execId: `x${execs++}` };
        try {
          await agent.client.exec(ref.containerId, ref.execId, { args: ['/bin/true'] });
          await agent.client.wait(ref);
        } catch (err) {
          // The attacker (PID 1) ended between two execs: the container is gone or going.
          if (!['ESRCH', 'ESTATE', 'ENOENT'].includes((err as NodevisorError).code)) throw err;
          break;
        }
      }
      expect(await attacker).toEqual({ exitCode: 0, signal: null });
      const out = agent.output(c);
      expect(out).not.toContain('FOUND');
      const summary = /attempts=(\d+) targets=(\d+) found=(\d+)/.exec(out);
      expect(summary, out).not.toBeNull();
      expect(Number(summary![1])).toBe(10_000);
      expect(Number(summary![2])).toBeGreaterThan(10); // it really saw the execs come and go
      expect(Number(summary![3])).toBe(0);
      await agent.client.destroyContainer(c.containerId);
    },
    120_000,
  );

  describe('mount targets (defect 3)', () => {
    let disk: string;
    beforeAll(() => {
      disk = loopImage(join(work, 'volume.ext4'), '16M');
      loops.push(disk);
    });

    it('refuses a mount point behind a symlink the workload planted (rootfs/data -> /elsewhere)', async () => {
      const elsewhere = join(work, 'elsewhere');
      mkdirSync(elsewhere);
      symlinkSync(elsewhere, join(tree, 'data'));
      const mounting = agent.client.mountStorage({ device: disk, fstype: 'ext4', mountPoint: join(tree, 'data') });
      await expect(mounting).rejects.toMatchObject({ code: 'ELOOP', message: expect.stringContaining(join(tree, 'data')) });
      expect(agent.mountPoints()).not.toContain(elsewhere);
      expect(agent.mountPoints()).not.toContain(join(tree, 'data'));
      // Neither through a symlinked parent: missing directories are not made on the other side.
      const nested = join(tree, 'data', 'sub', 'dir');
      await expect(agent.client.mountStorage({ device: disk, fstype: 'ext4', mountPoint: nested })).rejects.toMatchObject({ code: 'ELOOP' });
      expect(agent.mountPoints().filter((m) => m.startsWith(elsewhere))).toEqual([]);
      expect(() => execFileSync('test', ['-e', join(elsewhere, 'sub')])).toThrow();
    });

    it('refuses to unmount through a symlink, and unmounts the real mount point', async () => {
      const volume = join(tree, 'vol');
      await agent.client.mountStorage({ device: disk, fstype: 'ext4', mountPoint: volume });
      expect(agent.mountPoints()).toContain(volume);
      symlinkSync(volume, join(tree, 'vol-link'));
      await expect(agent.client.unmountStorage(join(tree, 'vol-link'))).rejects.toMatchObject({ code: 'ELOOP' });
      expect(agent.mountPoints()).toContain(volume);
      await agent.client.unmountStorage(volume);
      expect(agent.mountPoints()).not.toContain(volume);
    });
  });

  it('a read-only mount that fails leaves the device writable (BLKROSET rolled back) (defect 4)', async () => {
    const blank = loopImage(join(work, 'blank.img'), '8M', false); // no filesystem: mount fails
    loops.push(blank);
    expect(blankReadOnly()).toBe(false);
    const mounting = agent.client.mountStorage({ device: blank, fstype: 'ext4', options: ['ro'], mountPoint: join(work, 'mnt/blank') });
    await expect(mounting).rejects.toMatchObject({ code: 'EINVAL' });
    expect(blankReadOnly()).toBe(false);

    function blankReadOnly(): boolean {
      return blockdevReadOnly(blank);
    }
  });

  it("caps the JSON parser's values per frame and keeps serving (defect 4)", async () => {
    const errorsBefore = agent.protocolErrors.length;
    // 200 KB of `0,`: well inside a frame, but 100,000 values (~10 MiB of parse tree unbounded).
    const big = agent.client.request('echo', { data: 'x', pad: new Array(100_000).fill(0) }, { timeoutMs: 3000 });
    await expect(big).rejects.toMatchObject({ code: 'ETIMEDOUT' }); // refused without an id
    expect(agent.protocolErrors.slice(errorsBefore)).toContainEqual({
      code: 'EBADFRAME',
      message: expect.stringContaining('more than 65536 values'),
    });
    // Just under the cap is fine.
    expect(await agent.client.request('echo', { data: 'y', pad: new Array(60_000).fill(0) })).toEqual({ data: 'y' });
  });
});

