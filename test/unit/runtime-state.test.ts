/** nodevisor-runtime's state file and its per-id lock, on real files and real processes. */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { acquireLock, lockPath, processStartTime, withLock } from '../../src/runtime/lock.js';
import { daemonSocketPath, listStates, readState, removeState, stateExists, writeState, type ContainerState } from '../../src/runtime/state.js';
import { tempDir } from '../helpers/tmp.js';

function sample(id: string): ContainerState {
  return {
    id,
    bundle: '/bundles/b',
    rootfs: '/bundles/b/rootfs',
    created: '2026-11-30T05:00:00.000Z',
    annotations: { a: 'b' },
    sandboxId: id,
    socket: `/r/${id}/daemon.sock`,
    daemonPid: 10,
    pid: 11,
  };
}

describe('state file', () => {
  it('writes, reads back, lists and removes, leaving no staging file', async () => {
    const root = tempDir();
    await writeState(root, sample('c1'));
    await writeState(root, { ...sample('c2'), pid: 12 });
    mkdirSync(join(root, 'aborted'));
    expect(await readState(root, 'c1')).toEqual(sample('c1'));
    expect(await listStates(root)).toEqual(['c1', 'c2']);
    expect(readdirSync(join(root, 'c1'))).toEqual(['state.json']);
    expect(await stateExists(root, 'c2')).toBe(true);
    await removeState(root, 'c2');
    expect(await stateExists(root, 'c2')).toBe(false);
    expect(await listStates(tempDir() + '/missing')).toEqual([]);
  });

  it("names a missing container in runc's words, and a damaged file by its path", async () => {
    const root = tempDir();
    await expect(readState(root, 'nope')).rejects.toMatchObject({ code: 'ENOENT', message: 'container nope does not exist' });
    mkdirSync(join(root, 'bad'));
    writeFileSync(join(root, 'bad', 'state.json'), '{"id": ');
    await expect(readState(root, 'bad')).rejects.toMatchObject({ code: 'EBADSTATE', message: expect.stringContaining(join(root, 'bad', 'state.json')) });
    writeFileSync(join(root, 'bad', 'state.json'), JSON.stringify({ ...sample('bad'), pid: -1 }));
    await expect(readState(root, 'bad')).rejects.toThrow('pid is not a pid');
    writeFileSync(join(root, 'bad', 'state.json'), '[]');
    await expect(readState(root, 'bad')).rejects.toThrow('not a JSON object');
  });

  it('rejects ids that would leave the root', async () => {
    await expect(readState(tempDir(), '../etc')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(writeState(tempDir(), sample('a/b'))).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('keeps the daemon socket path within a unix socket address', () => {
    expect(daemonSocketPath('/run/nodevisor/runtime', 'pod1')).toBe('/run/nodevisor/runtime/pod1/daemon.sock');
    const long = daemonSocketPath('/run/containerd/runc/k8s.io', 'a'.repeat(64));
    expect(long.startsWith('/run/containerd/runc/k8s.io/.s/')).toBe(true);
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(100);
    expect(() => daemonSocketPath(`/${'x'.repeat(120)}`, 'p')).toThrow('too long for a unix socket path');
  });
});

describe('lock', () => {
  it('serialises commands on one id and lets other ids through', async () => {
    const root = tempDir();
    const order: string[] = [];
    const first = withLock(root, 'c', async () => {
      order.push('first in');
      await new Promise((r) => setTimeout(r, 150));
      order.push('first out');
    });
    await new Promise((r) => setTimeout(r, 20));
    const other = withLock(root, 'd', async () => order.push('other id'));
    const second = withLock(root, 'c', async () => order.push('second'));
    await Promise.all([first, second, other]);
    expect(order).toEqual(['first in', 'other id', 'first out', 'second']);
    expect(existsSync(lockPath(root, 'c'))).toBe(false);
  });

  it('gives up after the wait, naming the holder', async () => {
    const root = tempDir();
    const release = await acquireLock(root, 'c');
    await expect(acquireLock(root, 'c', 100)).rejects.toMatchObject({ code: 'EBUSY', message: expect.stringContaining(`pid ${process.pid}`) });
    await release();
    await release(); // idempotent
    const again = await acquireLock(root, 'c', 100);
    await again();
  });

  it("breaks the lock of a holder that died, and tells a recycled pid by its start time", async () => {
    const root = tempDir();
    // A real process that takes the lock and is killed while holding it.
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    await new Promise((r) => child.once('spawn', r));
    writeFileSync(lockPath(root, 'c'), `${child.pid} ${processStartTime(child.pid!)}\n`);
    await expect(acquireLock(root, 'c', 100)).rejects.toMatchObject({ code: 'EBUSY' });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const release = await acquireLock(root, 'c', 2000);
    expect(readFileSync(lockPath(root, 'c'), 'utf8')).toContain(`${process.pid} `);
    await release();
    // Our own live pid with another start time: a recycled pid, so the lock is stale.
    writeFileSync(lockPath(root, 'c'), `${process.pid} 1\n`);
    const again = await acquireLock(root, 'c', 2000);
    await again();
    expect(readdirSync(root)).toEqual([]);
  });

  it('lets exactly one of many concurrent breakers of a stale lock in at a time', async () => {
    const root = tempDir();
    writeFileSync(lockPath(root, 'c'), '999999999 0\n');
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 8 }, () =>
        withLock(root, 'c', async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 10));
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    expect(readdirSync(root)).toEqual([]);
  });
});
