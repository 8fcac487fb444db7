/**
 * Tier 2 (root): createSandbox / createContainer end to end with isolation 'namespaces', for
 * real: the agent binary as the sandbox's init in host namespaces, a busybox ext4 image on a
 * loop device the sandbox sets up, prestart hooks in the sandbox's netns, a container-id mapping
 * on disk, and an emptyDir-style ephemeral mount shared by two pod containers.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerIdMapping } from '../../src/mapping/container-id-mapping.js';
import { createContainer, createSandbox } from '../../src/sandbox/index.js';
import { agentOnHost } from '../helpers/agent-process.js';
import { busyboxRootfsNeed, makeBusyboxImage } from '../helpers/busybox-rootfs.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { busyboxSpec, childPids, loopDevicesOf, netnsInodeHook, recordedInode, runtimeConfig, settled } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/tmp.js';

const what = "sandboxes with isolation 'namespaces'";
const canRun = skipUnless(what, agentOnHost, needs.command('nsenter'), needs.command('losetup'), busyboxRootfsNeed());

function collect(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => stream.once('end', () => resolve(Buffer.concat(chunks).toString())));
}

describe(what, canRun, () => {
  let work: string;
  let image: string;
  let stateRoot: string;
  let mapping: ContainerIdMapping;

  beforeAll(() => {
    work = tempDir('nodevisor-sandbox-');
    image = makeBusyboxImage(work);
    stateRoot = join(work, 'state');
    mapping = new ContainerIdMapping(join(work, 'mapping'));
  });

  const common = () => ({
    runtimeConfig: runtimeConfig(),
    bundlePath: work,
    isolation: 'namespaces' as const,
    mapping,
    stateRoot,
  });
  const rootFs = () => ({ source: image, type: 'ext4', options: ['ro'], mounted: false });

  it("runs sh -c 'echo hi; exit 3' from an ext4 image: output arrives, status 3, hooks in the sandbox's netns, mapping while it lives", async () => {
    const inodeFile = join(work, 'prestart-netns');
    const spec = busyboxSpec(['sh', '-c', 'echo hi; echo err >&2; hostname; exit 3'], { hooks: { prestart: [netnsInodeHook(inodeFile)] } });
    const { sandbox, process } = await createSandbox({ ...common(), spec, rootFs: rootFs(), containerId: 'sb-echo' });
    try {
      expect(sandbox.id).toBe('sb-echo');
      expect(process.containerId).toBe('sb-echo');
      expect(process.pid).toBeGreaterThan(1);
      expect(sandbox.containers).toEqual([{ id: 'sb-echo', pid: process.pid, status: 'created' }]);
      // The prestart hook ran inside the netns the sandbox made.
      expect(sandbox.netNsPath).toMatch(/^\/run\/netns\/nodevisor-/);
      expect(recordedInode(inodeFile)).toBe(statSync(sandbox.netNsPath).ino);
      // The loop device the sandbox set up for the image, and the mapping on disk.
      expect(loopDevicesOf(image)).toHaveLength(1);
      expect(readdirSync(join(mapping.root, 'sb-echo'))).toEqual(['sb-echo']);
      expect(await mapping.fetch('sb-echo')).toBe('sb-echo');

      const { stdout, stderr } = sandbox.stdio('sb-echo');
      const out = collect(stdout);
      const err = collect(stderr);
      await sandbox.startContainer('sb-echo');
      expect(await sandbox.wait('sb-echo')).toEqual({ exitCode: 3, signal: null });
      expect(await out).toBe('hi\nbox\n');
      expect(await err).toBe('err\n');
      expect(sandbox.containers[0]!.status).toBe('stopped');
    } finally {
      await sandbox.delete();
    }
    expect(existsSync(sandbox.netNsPath)).toBe(false);
    expect(existsSync(join(mapping.root, 'sb-echo'))).toBe(false);
    expect(await settled(() => loopDevicesOf(image), [])).toEqual([]);
    expect(existsSync(join(stateRoot, 'sb-echo'))).toBe(false);
  });

  it('runs the container in the sandbox netns, in its own PID namespace, and signals it', async () => {
    const spec = busyboxSpec(['sh', '-c', 'stat -L -c %i /proc/self/ns/net; echo $$; exec sleep 1000']);
    const { sandbox } = await createSandbox({ ...common(), spec, rootFs: rootFs(), containerId: 'sb-sleep', builtIn: true });
    try {
      // builtIn (shim v2): no mapping on disk.
      expect(existsSync(join(mapping.root, 'sb-sleep'))).toBe(false);
      const stdout = sandbox.stdio('sb-sleep').stdout;
      let text = '';
      const twoLines = new Promise<void>((resolve) =>
        stdout.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.split('\n').length > 2) resolve();
        }),
      );
      await sandbox.startContainer('sb-sleep');
      await twoLines;
      // PID 1 of a PID namespace ignores signals it has no handler for, SIGKILL excepted.
      await sandbox.signal('sb-sleep', 'SIGKILL');
      expect(await sandbox.wait('sb-sleep')).toEqual({ exitCode: null, signal: 9 });
      const [ino, pid] = text.trim().split('\n');
      expect(Number(ino)).toBe(statSync(sandbox.netNsPath).ino);
      expect(pid).toBe('1');
    } finally {
      await sandbox.delete();
    }
  });

  it('survives its agent being killed: wait rejects, output ends, delete still cleans up everything', async () => {
    const before = childPids();
    const { sandbox } = await createSandbox({ ...common(), spec: busyboxSpec(['sleep', '1000']), rootFs: rootFs(), containerId: 'sb-killed' });
    try {
      await sandbox.startContainer('sb-killed');
      const unshare = childPids().filter((p) => !before.includes(p));
      expect(unshare).toHaveLength(1);
      const agentPid = Number(readFileSync(`/proc/${unshare[0]}/task/${unshare[0]}/children`, 'utf8').trim());
      const out = collect(sandbox.stdio('sb-killed').stdout);
      const waiting = sandbox.wait('sb-killed');
      process.kill(agentPid, 'SIGKILL');
      await expect(waiting).rejects.toMatchObject({ code: 'ECLOSED' });
      expect(await out).toBe('');
    } finally {
      await sandbox.delete();
    }
    expect(childPids()).toEqual(before);
    expect(existsSync(sandbox.netNsPath)).toBe(false);
    expect(await settled(() => loopDevicesOf(image), [])).toEqual([]);
  });

  it('lets a pod container join through createContainer and share an emptyDir-style ephemeral mount', async () => {
    // An emptyDir volume with medium Memory: a tmpfs at .../kubernetes.io~empty-dir/<name>.
    const emptyDir = join(work, 'pod/volumes/kubernetes.io~empty-dir/cache');
    mkdirSync(emptyDir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', emptyDir]);
    const hookFile = join(work, 'pod-prestart-netns');
    try {
      const { sandbox } = await createSandbox({ ...common(), spec: busyboxSpec(['sleep', '1000']), rootFs: rootFs(), containerId: 'pod-1' });
      try {
        await sandbox.startContainer('pod-1');
        const podSpec = (args: string[], extra = {}) =>
          busyboxSpec(args, {
            annotations: { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'pod-1' },
            mounts: [{ destination: '/tmp', type: 'bind', source: emptyDir, options: ['rbind', 'rw'] }],
            ...extra,
          });
        const writer = await createContainer({
          spec: podSpec(['sh', '-c', 'echo shared > /tmp/x'], { hooks: { prestart: [netnsInodeHook(hookFile)] } }),
          rootFs: rootFs(),
          containerId: 'pod-1-writer',
          bundlePath: work,
          sandbox,
        });
        expect(writer.containerId).toBe('pod-1-writer');
        // Kata B9: a pod container's prestart hooks run in the sandbox's netns.
        expect(recordedInode(hookFile)).toBe(statSync(sandbox.netNsPath).ino);
        // The mapping is written (once) for the joined container too.
        expect(readdirSync(join(mapping.root, 'pod-1-writer'))).toEqual(['pod-1']);
        await sandbox.startContainer('pod-1-writer');
        expect(await sandbox.wait('pod-1-writer')).toEqual({ exitCode: 0, signal: null });

        // The second one is found by the sandbox-id annotation (no sandbox object given).
        await createContainer({ spec: podSpec(['cat', '/tmp/x']), rootFs: rootFs(), containerId: 'pod-1-reader', bundlePath: work });
        const out = collect(sandbox.stdio('pod-1-reader').stdout);
        await sandbox.startContainer('pod-1-reader');
        expect(await sandbox.wait('pod-1-reader')).toEqual({ exitCode: 0, signal: null });
        expect(await out).toBe('shared\n');
        // Ephemeral storage is the sandbox's own tmpfs, not the host's emptyDir.
        expect(readdirSync(emptyDir)).toEqual([]);
        expect(sandbox.containers.map((c) => c.id)).toEqual(['pod-1', 'pod-1-writer', 'pod-1-reader']);
        expect(loopDevicesOf(image)).toHaveLength(3);
      } finally {
        await sandbox.delete();
      }
      for (const id of ['pod-1', 'pod-1-writer', 'pod-1-reader']) expect(existsSync(join(mapping.root, id))).toBe(false);
      expect(await settled(() => loopDevicesOf(image), [])).toEqual([]);
    } finally {
      execFileSync('umount', [emptyDir]);
    }
  });
});
