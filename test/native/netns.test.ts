/**
 * Tier 2 (root, real kernel objects): network namespaces created, entered and deleted through
 * the addon, a veth pair across them, and leak checks over many cycles.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { readlink } from 'node:fs/promises';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { NodevisorError } from '../../src/errors.js';
import {
  createNetNs,
  currentNetNsIdentity,
  DEFAULT_NETNS_DIR,
  deleteNetNs,
  enterNetNs,
  netNsIdentity,
} from '../../src/netns/index.js';
import { needs, skipUnless } from '../helpers/needs.js';

/** Inode of the JS thread's netns, read synchronously on the JS thread. */
function threadNetNsInode(): number {
  return statSync('/proc/thread-self/ns/net').ino;
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('network namespaces (root)', skipUnless('netns tests (create, enter, delete network namespaces; iproute2 configures links)', needs.root, needs.command('ip')), () => {
  const created: string[] = [];
  const cleanups: Array<() => void> = [];

  afterEach(async () => {
    for (const undo of cleanups.splice(0).reverse()) {
      try {
        undo();
      } catch {
        // best effort: the object may already be gone with its namespace
      }
    }
    for (const path of created.splice(0)) await deleteNetNs(path).catch(() => undefined);
  });

  async function fresh(options?: Parameters<typeof createNetNs>[0]): Promise<string> {
    const path = await createNetNs(options);
    created.push(path);
    return path;
  }

  it('creates a namespace bound under /run/netns, enters it and deletes it', async () => {
    const hostInode = threadNetNsInode();
    const path = await fresh();
    expect(path.startsWith(`${DEFAULT_NETNS_DIR}/`)).toBe(true);
    expect(basename(path)).toMatch(/^nodevisor-[0-9a-f]{32}$/);
    expect(readdirSync(DEFAULT_NETNS_DIR)).toContain(basename(path));

    const id = await netNsIdentity(path);
    expect(id.ino).toBe(statSync(path).ino);
    expect(id.ino).not.toBe(hostInode);
    expect(currentNetNsIdentity().ino).toBe(hostInode);

    const inside = enterNetNs(path, () => ({
      inode: threadNetNsInode(),
      identity: currentNetNsIdentity(),
      links: ip('-o', 'link', 'show'),
    }));
    expect(inside.inode).toBe(id.ino);
    expect(inside.identity).toEqual(id);
    // A new namespace has only a loopback device.
    expect(inside.links.trim().split('\n')).toHaveLength(1);
    expect(inside.links).toMatch(/^1: lo:/);
    expect(threadNetNsInode()).toBe(hostInode);

    expect(await deleteNetNs(path)).toBe(true);
    expect(existsSync(path)).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(path);
    // Deleting again is not an error: nothing left to remove.
    expect(await deleteNetNs(path)).toBe(false);
  });

  it('creates in a chosen directory with a chosen name, and refuses to reuse a path', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'nodevisor-netns-')), 'ns');
    cleanups.push(() => rmSync(dirname(dir), { recursive: true, force: true }));
    const path = await fresh({ dir, name: 'sandbox-a' });
    expect(path).toBe(join(dir, 'sandbox-a'));
    await expect(netNsIdentity(path)).resolves.toMatchObject({ ino: statSync(path).ino });
    await expect(createNetNs({ dir, name: 'sandbox-a' })).rejects.toMatchObject({
      code: 'EEXIST',
      syscall: 'open',
      path,
    });
    // The failed attempt did not disturb the existing namespace.
    await expect(netNsIdentity(path)).resolves.toMatchObject({ ino: statSync(path).ino });
  });

  it('rejects bad names and directories before touching the system', async () => {
    await expect(createNetNs({ name: '../escape' })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(createNetNs({ name: '.hidden' })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(createNetNs({ dir: 'relative/dir' })).rejects.toMatchObject({ code: 'EINVAL' });
    expect(existsSync(join(DEFAULT_NETNS_DIR, '..', 'escape'))).toBe(false);
  });

  it('a veth end moved inside reaches the host end over TCP from a process spawned in enterNetNs, and is invisible outside', async () => {
    const path = await fresh();
    const tag = process.pid.toString(36).slice(-6);
    const hostEnd = `nvh${tag}`;
    const innerEnd = `nvi${tag}`;
    const octet = 100 + (process.pid % 100);
    const hostAddr = `10.213.${octet}.1`;
    const innerAddr = `10.213.${octet}.2`;

    ip('link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', innerEnd);
    cleanups.push(() => ip('link', 'del', hostEnd));
    ip('link', 'set', innerEnd, 'netns', path);
    ip('addr', 'add', `${hostAddr}/24`, 'dev', hostEnd);
    ip('link', 'set', hostEnd, 'up');
    enterNetNs(path, () => {
      ip('addr', 'add', `${innerAddr}/24`, 'dev', innerEnd);
      ip('link', 'set', innerEnd, 'up');
      ip('link', 'set', 'lo', 'up');
    });

    // A TCP server on the host end (host namespace) answers what it is sent, and notes who
    // connected: the peer address proves the bytes crossed the veth pair from the inside.
    const peers: string[] = [];
    const server = createServer((socket) => {
      peers.push(socket.remoteAddress ?? '');
      socket.on('data', (chunk) => socket.end(`echo:${chunk.toString()}`));
    });
    server.listen(0, hostAddr);
    await once(server, 'listening');
    cleanups.push(() => server.close());
    const port = (server.address() as AddressInfo).port;

    // Only the spawn happens inside; waiting for the child happens outside.
    const client = `
      const s = require('node:net').connect(${port}, '${hostAddr}', () => s.write('hello from inside'));
      let got = ''; s.on('data', (d) => (got += d)); s.on('end', () => { process.stdout.write(got); });
      s.on('error', (e) => { console.error(e.message); process.exitCode = 1; });
      setTimeout(() => { console.error('no answer within 10 s'); process.exit(2); }, 10000).unref();`;
    const child = enterNetNs(path, () => spawn(process.execPath, ['-e', client], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(output).toBe('echo:hello from inside');
    expect(code).toBe(0);
    expect(peers).toEqual([innerAddr]);

    const outside = ip('-o', 'link', 'show');
    expect(outside).toContain(hostEnd);
    expect(outside).not.toContain(innerEnd);
    expect(() => ip('link', 'show', innerEnd)).toThrow();
    const inside = enterNetNs(path, () => ip('-o', 'addr', 'show', 'dev', innerEnd));
    expect(inside).toContain(innerAddr);
  });

  it('a child spawned inside stays in the namespace for its whole life', async () => {
    const path = await fresh();
    const id = await netNsIdentity(path);
    const child = enterNetNs(path, () =>
      spawn('sh', ['-c', 'sleep 0.2; readlink /proc/self/ns/net'], { stdio: ['ignore', 'pipe', 'inherit'] }),
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await once(child, 'exit');
    expect(out.trim()).toBe(`net:[${id.ino}]`);
  });

  it('creation never moves a libuv worker thread out of the host namespace', async () => {
    const host = `net:[${threadNetNsInode()}]`;
    // More concurrent creations than pool threads, so every worker takes part.
    const paths = await Promise.all(Array.from({ length: 16 }, () => fresh()));
    expect(new Set(paths).size).toBe(16);
    // fs.promises runs readlink on the pool threads; /proc/thread-self is the worker's own.
    const seen = await Promise.all(Array.from({ length: 64 }, () => readlink('/proc/thread-self/ns/net')));
    expect(new Set(seen)).toEqual(new Set([host]));
  });

  it('restores the original namespace when fn throws, and rethrows the same error', async () => {
    const path = await fresh();
    const before = threadNetNsInode();
    const boom = new Error('boom inside');
    let seenInside = 0;
    let thrown: unknown;
    try {
      enterNetNs(path, () => {
        seenInside = threadNetNsInode();
        throw boom;
      });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBe(boom);
    expect(seenInside).toBe((await netNsIdentity(path)).ino);
    expect(threadNetNsInode()).toBe(before);
  });

  it('nests: an inner enterNetNs returns to the outer namespace, not the host', async () => {
    const [a, b] = [await fresh(), await fresh()];
    const [idA, idB] = [await netNsIdentity(a), await netNsIdentity(b)];
    const host = threadNetNsInode();
    const seen = enterNetNs(a, () => {
      const inB = enterNetNs(b, threadNetNsInode);
      return [threadNetNsInode(), inB];
    });
    expect(seen).toEqual([idA.ino, idB.ino]);
    expect(threadNetNsInode()).toBe(host);
  });

  it('rejects an async fn before entering, and a returned promise after leaving', async () => {
    const path = await fresh();
    const before = threadNetNsInode();
    let called = false;
    const asyncFn = async (): Promise<number> => {
      called = true;
      return 1;
    };
    expect(() => enterNetNs(path, asyncFn)).toThrow(/must be synchronous/);
    expect(called).toBe(false);

    let insideInode = 0;
    const returnsPromise = (): Promise<never> => {
      insideInode = threadNetNsInode();
      return Promise.reject(new Error('would run outside'));
    };
    let thrown: unknown;
    try {
      enterNetNs(path, returnsPromise);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(NodevisorError);
    expect((thrown as NodevisorError).code).toBe('EINVAL');
    expect((thrown as Error).message).toMatch(/returned a promise/);
    expect(insideInode).toBe((await netNsIdentity(path)).ino);
    expect(threadNetNsInode()).toBe(before);
  });

  it('does not enter what is not a network namespace, and does not call fn', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodevisor-notns-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'plain');
    writeFileSync(file, '');
    let calls = 0;
    const fn = (): void => void calls++;
    for (const path of [file, dir, '/proc/self/status', '/proc/self/ns/mnt']) {
      expect(() => enterNetNs(path, fn)).toThrow(`not a network namespace: ${path}`);
    }
    let missing: unknown;
    try {
      enterNetNs(join(dir, 'missing'), fn);
    } catch (err) {
      missing = err;
    }
    expect(missing).toBeInstanceOf(NodevisorError);
    expect(missing).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'open', path: join(dir, 'missing') });
    expect(calls).toBe(0);
  });

  it('deleteNetNs refuses to unlink a path that is not a network namespace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodevisor-notns-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'precious');
    writeFileSync(file, 'keep me');
    await expect(deleteNetNs(file)).rejects.toThrow(`not a network namespace: ${file}`);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });

  describe('200 create/delete cycles', () => {
    const snapshot = () => ({
      listing: readdirSync(DEFAULT_NETNS_DIR).sort(),
      mountinfoLines: readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).length,
      fds: readdirSync('/proc/self/fd').length,
    });

    it('leave /run/netns, mountinfo and the fd count as before', async () => {
      // Warm up: load the addon, start libuv's worker threads.
      for (let i = 0; i < 3; i++) await deleteNetNs(await createNetNs());

      // Other test files run in parallel processes and may mount or create namespaces
      // meanwhile. Our own leaks are checked exactly every round; the global "as before"
      // comparison is retried a few rounds so that only a leak that repeats fails it.
      let last: { before: ReturnType<typeof snapshot>; after: ReturnType<typeof snapshot> } | undefined;
      for (let round = 0; round < 3; round++) {
        const before = snapshot();
        const paths: string[] = [];
        for (let i = 0; i < 200; i++) {
          const path = await createNetNs();
          paths.push(path);
          expect(await deleteNetNs(path)).toBe(true);
        }
        const after = snapshot();
        const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
        const listing = new Set(after.listing);
        expect(new Set(paths).size).toBe(200);
        for (const path of paths) {
          expect(listing.has(basename(path))).toBe(false);
          expect(mountinfo.includes(` ${path} `)).toBe(false);
        }
        last = { before, after };
        if (JSON.stringify(before) === JSON.stringify(after)) break;
      }
      expect(last!.after).toEqual(last!.before);
    });
  });
});
