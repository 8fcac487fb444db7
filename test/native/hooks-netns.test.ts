/**
 * Tier 2 (root): OCI hooks started inside the sandbox's network namespace, as real processes.
 */
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { preStartHooks } from '../../src/hooks/hooks.js';
import { runHook } from '../../src/hooks/run-hook.js';
import { createNetNs, deleteNetNs, netNsIdentity } from '../../src/netns/index.js';
import type { Spec } from '../../src/oci/spec.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { minimalSpec } from '../helpers/spec.js';
import { tempDir } from '../helpers/tmp.js';


function script(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

describe('hooks in the sandbox netns (root)', skipUnless('hooks inside a network namespace', needs.root), () => {
  let netns = '';
  let dir = '';

  beforeAll(async () => {
    dir = tempDir();
    netns = await createNetNs({ dir });
  });

  afterAll(async () => {
    if (netns) await deleteNetNs(netns);
  });

  it('runs each prestart hook inside the netns, and the JS thread stays outside', async () => {
    const out = join(dir, 'inodes');
    // Each hook records the inode of the network namespace it runs in, and what it can see.
    const hook = script(dir, 'record.sh', `stat -L -c %i /proc/self/ns/net >> ${out}; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' >> ${out}.links`);
    const spec: Spec = { ...minimalSpec(), hooks: { prestart: [{ path: hook }, { path: hook }] } };
    const hostInode = statSync('/proc/thread-self/ns/net').ino;
    await preStartHooks(spec, 'c1', '/bundle', { netns });
    const sandbox = await netNsIdentity(netns);
    expect(readFileSync(out, 'utf8').trim().split('\n').map(Number)).toEqual([sandbox.ino, sandbox.ino]);
    expect(sandbox.ino).not.toBe(hostInode);
    expect(statSync('/proc/thread-self/ns/net').ino).toBe(hostInode);
    // A fresh netns has only the loopback device.
    expect(new Set(readFileSync(`${out}.links`, 'utf8').trim().split('\n'))).toEqual(new Set(['lo']));
  });

  it('still kills a hook that times out inside the netns', async () => {
    const hook = script(dir, 'slow.sh', 'sleep 30');
    await expect(runHook({ path: hook, timeout: 1 }, { ociVersion: '1', id: 'c', status: 'creating', bundle: '/b' }, { netns })).rejects.toMatchObject({
      code: 'EHOOK_TIMEOUT',
    });
  });

  it('refuses a netns path that is not a network namespace, without running the hook', async () => {
    const marker = join(dir, 'ran');
    const hook = script(dir, 'mark.sh', `touch ${marker}`);
    const notNetns = join(dir, 'plain-file');
    writeFileSync(notNetns, '');
    await expect(
      runHook({ path: hook }, { ociVersion: '1', id: 'c', status: 'creating', bundle: '/b' }, { netns: notNetns }),
    ).rejects.toThrow(`not a network namespace: ${notNetns}`);
    expect(() => statSync(marker)).toThrow();
  });
});
