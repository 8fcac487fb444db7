/**
 * Tier 2 (root): fault injection at each step of createSandbox / createContainer with isolation
 * 'namespaces'. Each failure must name its step, chain its cause, and leave nothing behind:
 * no network namespace, loop device, mount, thread, child process (agent), state directory or
 * mapping. What the host has is listed before and after each case.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { NodevisorError } from '../../src/errors.js';
import { ContainerIdMapping } from '../../src/mapping/container-id-mapping.js';
import type { Spec } from '../../src/oci/spec.js';
import type { RootFs } from '../../src/rootfs/rootfs.js';
import { createContainer, createSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { agentOnHost } from '../helpers/agent-process.js';
import { busyboxRootfsNeed, makeBusyboxImage } from '../helpers/busybox-rootfs.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { busyboxSpec, backToBefore, hostState, netnsInodeHook, netnsMountsOf, recordedInode, runtimeConfig, settled } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/tmp.js';

const what = "sandbox fault injection (isolation 'namespaces')";
const canRun = skipUnless(what, agentOnHost, needs.command('nsenter'), needs.command('losetup'), busyboxRootfsNeed());

describe(what, canRun, () => {
  let work: string;
  let image: string;
  let stateRoot: string;
  let mapping: ContainerIdMapping;
  let counter = 0;

  const rootFs = (): RootFs => ({ source: image, type: 'ext4', options: ['ro'], mounted: false });
  const state = () => hostState({ image, stateRoot, mappingRoot: mapping.root, workDir: work });

  /** Creates a sandbox with `change` applied, expects it to fail at `step`, and checks nothing is left. */
  async function expectCleanFailure(
    step: string,
    change: { spec?: Spec; rootFs?: RootFs; agentPath?: string },
    code?: string,
  ): Promise<NodevisorError> {
    const before = state();
    const id = `fault-${++counter}`;
    const err = await createSandbox({
      spec: change.spec ?? busyboxSpec(['true']),
      runtimeConfig: runtimeConfig(),
      rootFs: change.rootFs ?? rootFs(),
      containerId: id,
      bundlePath: work,
      isolation: 'namespaces',
      mapping,
      stateRoot,
      ...(change.agentPath ? { agentPath: change.agentPath } : {}),
    }).then(
      () => {
        throw new Error(`createSandbox ${id} succeeded`);
      },
      (e: unknown) => e as NodevisorError,
    );
    expect(err).toBeInstanceOf(NodevisorError);
    expect(err.message).toMatch(new RegExp(`^createSandbox: ${step}: `));
    expect((err as NodevisorError & { step?: string }).step).toBe(step);
    expect(err.cause).toBeDefined();
    if (code) expect(err.code).toBe(code);
    // Loop devices are freed by the kernel once the agent's mounts are gone: allow it a moment.
    expect(await backToBefore(state, before)).toEqual(before);
    return err;
  }

  beforeAll(async () => {
    work = tempDir('nodevisor-faults-');
    image = makeBusyboxImage(work);
    stateRoot = join(work, 'state');
    mapping = new ContainerIdMapping(join(work, 'mapping'));
    // One whole sandbox first, so lazily started threads (libuv's pool) exist before counting.
    const { sandbox } = await createSandbox({
      spec: busyboxSpec(['true']),
      runtimeConfig: runtimeConfig(),
      rootFs: rootFs(),
      containerId: 'warm-up',
      bundlePath: work,
      isolation: 'namespaces',
      mapping,
      stateRoot,
    });
    await sandbox.delete();
  });

  it('a bad spec (no process) fails at the sandbox config', async () => {
    const spec = busyboxSpec(['true']);
    delete spec.process;
    const err = await expectCleanFailure('sandbox config', { spec }, 'EINVAL');
    expect(err.message).toMatch(/process/);
  });

  it('a missing rootfs source fails at the rootfs', async () => {
    await expectCleanFailure('rootfs', { rootFs: { source: join(work, 'no-such-image'), type: 'ext4', mounted: false } }, 'ENOENT');
  });

  it('a failing prestart hook fails there and the netns it ran in is deleted', async () => {
    const file = join(work, `hook-${counter + 1}`);
    const err = await expectCleanFailure('prestart hooks', { spec: busyboxSpec(['true'], { hooks: { prestart: [netnsInodeHook(file, 7)] } }) });
    expect(err.message).toMatch(/exit status 7/);
    expect(netnsMountsOf(recordedInode(file))).toEqual([]);
  });

  it('an agent that cannot start fails at the backend, and the netns goes', async () => {
    const file = join(work, `hook-${counter + 1}`);
    const err = await expectCleanFailure('start the namespaces backend', {
      spec: busyboxSpec(['true'], { hooks: { prestart: [netnsInodeHook(file)] } }),
      agentPath: '/bin/false',
    });
    expect(err.message).toMatch(/did not come up/);
    expect(netnsMountsOf(recordedInode(file))).toEqual([]);
  });

  it('an agent that refuses the mount fails at creating the container; loop device, agent and netns go', async () => {
    const file = join(work, `hook-${counter + 1}`);
    const err = await expectCleanFailure('create the container', {
      spec: busyboxSpec(['true'], { hooks: { prestart: [netnsInodeHook(file)] } }),
      rootFs: { source: image, type: 'nodevisor-no-such-fs', mounted: false },
    });
    expect(err.message).toMatch(/mount the rootfs in the agent: agent storage.mount/);
    expect(netnsMountsOf(recordedInode(file))).toEqual([]);
  });

  it('an image that is no filesystem at all is refused by the agent the same way', async () => {
    const file = join(work, `hook-${counter + 1}`);
    await expectCleanFailure('create the container', {
      spec: busyboxSpec(['true'], { hooks: { prestart: [netnsInodeHook(file)] } }),
      rootFs: { source: join(work, 'tree/etc/marker'), type: 'ext4', mounted: false },
    });
    expect(netnsMountsOf(recordedInode(file))).toEqual([]);
  });

  describe('createContainer in a live sandbox', () => {
    let sandbox: Sandbox;
    beforeAll(async () => {
      ({ sandbox } = await createSandbox({
        spec: busyboxSpec(['sleep', '1000']),
        runtimeConfig: runtimeConfig(),
        rootFs: rootFs(),
        containerId: 'live',
        bundlePath: work,
        isolation: 'namespaces',
        mapping,
        stateRoot,
      }));
    });
    afterAll(async () => {
      await sandbox?.delete();
    });

    const podSpec = (extra: Partial<Spec> = {}) =>
      busyboxSpec(['true'], {
        annotations: { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'live' },
        ...extra,
      });

    it('a failing prestart hook removes the container it created, its loop device and its mapping', async () => {
      const before = state();
      const err = await createContainer({
        spec: podSpec({ hooks: { prestart: [{ path: '/bin/sh', args: ['sh', '-c', 'exit 4'] }] } }),
        rootFs: rootFs(),
        containerId: 'joiner',
        bundlePath: work,
        sandbox,
      }).catch((e: unknown) => e as NodevisorError);
      expect(err).toBeInstanceOf(NodevisorError);
      expect((err as NodevisorError).message).toMatch(/^createContainer: prestart hooks: /);
      expect(sandbox.containers.map((c) => c.id)).toEqual(['live']);
      expect(await backToBefore(state, before)).toEqual(before);
      // The sandbox still works: the same id can join now.
      await createContainer({ spec: podSpec(), rootFs: rootFs(), containerId: 'joiner', bundlePath: work, sandbox });
      expect(sandbox.containers.map((c) => c.id)).toEqual(['live', 'joiner']);
    });

    it('a spec naming another sandbox, or none, is refused before anything is made', async () => {
      const other = podSpec();
      other.annotations!['io.kubernetes.cri.sandbox-id'] = 'someone-else';
      await expect(createContainer({ spec: other, rootFs: rootFs(), containerId: 'lost', bundlePath: work, sandbox })).rejects.toThrow(
        /^createContainer: sandbox id: the spec names sandbox someone-else/,
      );
      await expect(createContainer({ spec: busyboxSpec(['true']), rootFs: rootFs(), containerId: 'lost', bundlePath: work })).rejects.toThrow(
        /^createContainer: sandbox id: Could not find sandbox ID/,
      );
    });
  });
});
