/**
 * Tier 2 (root): setupNetworkNamespace (Kata B15/B16 with nodevisor's fixes) against real
 * namespaces: create when empty, keep a caller's, reject the host's own and non-namespaces.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { NodevisorError } from '../../src/errors.js';
import {
  createNetNs,
  deleteNetNs,
  enterNetNs,
  netNsIdentity,
  setupNetworkNamespace,
} from '../../src/netns/index.js';
import type { NetworkConfig } from '../../src/oci/sandbox-config.js';
import { needs, skipUnless } from '../helpers/needs.js';


const config = (netNsPath: string, extra: Partial<NetworkConfig> = {}): NetworkConfig => ({
  netNsPath,
  netNsCreated: false,
  disableNewNetNs: false,
  ...extra,
});

describe('setupNetworkNamespace (root)', skipUnless('setupNetworkNamespace tests (create and bind-mount namespaces)', needs.root), () => {
  const namespaces: string[] = [];
  const undo: Array<() => void> = [];

  afterEach(async () => {
    for (const step of undo.splice(0).reverse()) {
      try {
        step();
      } catch {
        // best effort
      }
    }
    for (const path of namespaces.splice(0)) await deleteNetNs(path).catch(() => undefined);
  });

  it('disableNewNetNs: returns the config unchanged and creates nothing', async () => {
    const input = config('', { disableNewNetNs: true });
    const out = await setupNetworkNamespace(input);
    expect(out).toBe(input);
    expect(out).toEqual(config('', { disableNewNetNs: true }));
  });

  it('empty path: creates a namespace and returns a new config, leaving the input alone', async () => {
    const input = Object.freeze(config(''));
    const out = await setupNetworkNamespace(input);
    namespaces.push(out.netNsPath);
    expect(out).not.toBe(input);
    expect(input).toEqual(config(''));
    expect(out.netNsCreated).toBe(true);
    expect(out.disableNewNetNs).toBe(false);
    expect(out.netNsPath).toMatch(/^\/run\/netns\/nodevisor-[0-9a-f]{32}$/);
    const id = await netNsIdentity(out.netNsPath);
    expect(enterNetNs(out.netNsPath, () => execFileSync('readlink', ['/proc/self/ns/net'], { encoding: 'utf8' }).trim())).toBe(
      `net:[${id.ino}]`,
    );
  });

  it('a namespace of the caller: accepted unchanged, netNsCreated stays false', async () => {
    const path = await createNetNs();
    namespaces.push(path);
    const input = config(path);
    const out = await setupNetworkNamespace(input);
    expect(out).toBe(input);
    expect(out.netNsCreated).toBe(false);
  });

  it('accepts /proc/<pid>/ns/net of a process in another namespace', async () => {
    const path = await createNetNs();
    namespaces.push(path);
    const sleeper: ChildProcess = enterNetNs(path, () => spawn('sleep', ['30'], { stdio: 'ignore' }));
    undo.push(() => sleeper.kill('SIGKILL'));
    const procPath = `/proc/${sleeper.pid}/ns/net`;
    await expect(setupNetworkNamespace(config(procPath))).resolves.toEqual(config(procPath));
  });

  it('rejects the host namespace: /proc/self/ns/net', async () => {
    const err = await setupNetworkNamespace(config('/proc/self/ns/net')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodevisorError);
    expect(err).toMatchObject({ code: 'EINVAL', path: '/proc/self/ns/net' });
    expect((err as Error).message).toMatch(/^host networking requested, not supported by nodevisor/);
  });

  it('rejects the host namespace reached through a bind mount (identity, not path)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodevisor-hostns-'));
    undo.push(() => rmSync(dir, { recursive: true, force: true }));
    const alias = join(dir, 'host-alias');
    closeSync(openSync(alias, 'w'));
    execFileSync('mount', ['--bind', '/proc/self/ns/net', alias]);
    namespaces.push(alias); // deleteNetNs unmounts and removes it
    await expect(setupNetworkNamespace(config(alias))).rejects.toThrow(/host networking requested/);
  });

  it('rejects a path that is not a network namespace, with a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodevisor-notns-'));
    undo.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'plain');
    writeFileSync(file, 'x');
    for (const path of [file, dir, '/proc/self/ns/uts']) {
      const err = await setupNetworkNamespace(config(path)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NodevisorError);
      expect(err).toMatchObject({ code: 'EINVAL', path });
      expect((err as Error).message).toContain(`not a network namespace: ${path}`);
    }
    const missing = join(dir, 'missing');
    const err = await setupNetworkNamespace(config(missing)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'open', path: missing });
  });
});
