/**
 * Tier 1: the orchestration of createSandbox / createContainer / Sandbox against a fake
 * isolation backend and a fake agent (the real AgentClient and frame codec over in-memory
 * streams), so the order of Kata's steps and the rollback of each are checked fast, without
 * root: the host network namespace is used (disableNewNetNs), hooks are real processes.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { AgentClient } from '../../src/agent/client.js';
import { encodeFrame, FrameDecoder, type Message } from '../../src/agent/frame.js';
import { NodevisorError } from '../../src/errors.js';
import { ContainerIdMapping } from '../../src/mapping/container-id-mapping.js';
import type { AgentDisk, BackendStartOptions, SandboxBackend } from '../../src/sandbox/backend.js';
import { createContainer, createSandbox, setBackendStarter } from '../../src/sandbox/create.js';
import type { Spec } from '../../src/oci/spec.js';
import { busyboxSpec, runtimeConfig } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/tmp.js';

/** Requests the fake agent refuses, by type. */
type Refusals = Partial<Record<string, string>>;

/** An agent in JS: answers requests like nodevisor-agent and records them in `calls`. */
function fakeAgent(calls: string[], refuse: Refusals): AgentClient {
  const toAgent = new PassThrough();
  const fromAgent = new PassThrough();
  const decoder = new FrameDecoder();
  const send = (m: Message) => fromAgent.write(encodeFrame(m));
  toAgent.on('data', (chunk: Buffer) => {
    for (const item of decoder.push(chunk)) {
      if ('error' in item) continue;
      const { id, type, ...fields } = item.message;
      const cid = String(fields.containerId ?? '');
      calls.push(`${type}${cid ? ` ${cid}` : ''}`);
      if (refuse[type]) {
        send({ id, type: 'error', code: 'EREFUSED', message: refuse[type] });
        continue;
      }
      switch (type) {
        case 'container.create':
          send({ id, type: 'ok', pid: 42 });
          break;
        case 'container.start':
          send({ id, type: 'ok' });
          send({ id: 0, type: 'stdio', containerId: cid, stream: 'stdout', data: Buffer.from(`out of ${cid}\n`).toString('base64') });
          send({ id: 0, type: 'stdio', containerId: cid, stream: 'stdout', eof: true });
          send({ id: 0, type: 'exit', containerId: cid, exitCode: 3, signal: null });
          break;
        case 'container.wait':
          send({ id, type: 'ok', exitCode: 3, signal: null });
          break;
        case 'storage.mount':
          send({ id, type: 'ok', device: '/dev/fake', mountPoint: String(fields.mountPoint) });
          break;
        default:
          send({ id, type: 'ok' });
      }
    }
  });
  return new AgentClient(Duplex.from({ readable: fromAgent, writable: toAgent }));
}

/** A backend that records what the orchestration asks of it. */
function fakeStarter(calls: string[], refuse: Refusals, failStart = false) {
  return async (options: BackendStartOptions): Promise<SandboxBackend> => {
    calls.push(`start ${options.sandboxId}`);
    if (failStart) throw new NodevisorError('the fake VM cannot start', { code: 'EFAKE' });
    const agent = fakeAgent(calls, refuse);
    return {
      isolation: 'vm',
      agent,
      rootfsMountPoint: (cid) => `/run/fake/${cid}`,
      hostRootfs: (target) => target,
      async attachDisk(cid): Promise<AgentDisk> {
        calls.push(`attach ${cid}`);
        if (refuse.attach) throw new NodevisorError(refuse.attach, { code: 'ENOSPC' });
        return { locator: { serial: cid }, release: async () => void calls.push(`release ${cid}`) };
      },
      async stop() {
        calls.push('stop');
        agent.close();
      },
    };
  };
}

class CountingMapping extends ContainerIdMapping {
  adds = 0;
  override async add(containerId: string, sandboxId: string): Promise<void> {
    this.adds++;
    await super.add(containerId, sandboxId);
  }
}

describe('createSandbox / createContainer orchestration (fake backend)', () => {
  let work: string;
  let image: string;
  let calls: string[];
  let mapping: CountingMapping;
  let stateRoot: string;

  beforeEach(() => {
    work = tempDir('nodevisor-orchestration-');
    image = join(work, 'disk.img');
    writeFileSync(image, Buffer.alloc(64 * 1024));
    calls = [];
    mapping = new CountingMapping(join(work, 'mapping'));
    stateRoot = join(work, 'state');
  });
  afterEach(() => setBackendStarter('vm', undefined));

  const hostNet = () => ({ ...runtimeConfig('/unused'), disableNewNetNs: true });
  const hookWriting = (file: string, exitCode = 0) => ({ path: '/bin/sh', args: ['sh', '-c', `echo ran >> ${file}; exit ${exitCode}`] });
  const create = (spec: Spec, extra = {}) =>
    createSandbox({
      spec,
      runtimeConfig: hostNet(),
      rootFs: { source: image, type: 'ext4', options: ['ro'], mounted: false },
      containerId: 'sb',
      bundlePath: work,
      mapping,
      stateRoot,
      ...extra,
    });

  it("runs Kata B8's steps in order: prestart hooks before the VM, disk, mount, create, mapping last", async () => {
    const hookFile = join(work, 'hook');
    setBackendStarter('vm', async (options) => {
      // The hooks ran before anything of the sandbox was started.
      calls.push(`hooks-done=${existsSync(hookFile)}`);
      return fakeStarter(calls, {})(options);
    });
    const { sandbox, process } = await create(busyboxSpec(['true'], { hooks: { prestart: [hookWriting(hookFile)] } }));
    expect(process).toMatchObject({ containerId: 'sb', pid: 42 });
    expect(calls).toEqual(['hooks-done=true', 'start sb', 'attach sb', 'storage.mount', 'container.create sb']);
    expect(mapping.adds).toBe(1);
    expect(await mapping.fetch('sb')).toBe('sb');

    const out: Buffer[] = [];
    sandbox.stdio('sb').stdout.on('data', (c: Buffer) => out.push(c));
    await sandbox.startContainer('sb');
    expect(await sandbox.wait('sb')).toEqual({ exitCode: 3, signal: null });
    const stdout = sandbox.stdio('sb').stdout;
    if (!stdout.readableEnded) await new Promise((r) => stdout.once('end', r));
    expect(Buffer.concat(out).toString()).toBe('out of sb\n');

    calls.length = 0;
    await sandbox.delete();
    // stop: destroy, then unmount and detach, then the VM.
    expect(calls).toEqual(['container.destroy sb', 'storage.unmount', 'release sb', 'stop']);
    expect(await mapping.fetch('sb')).toBeUndefined();
    expect(existsSync(join(stateRoot, 'sb'))).toBe(false);
  });

  it('builtIn (shim v2) writes no mapping', async () => {
    setBackendStarter('vm', fakeStarter(calls, {}));
    const { sandbox } = await create(busyboxSpec(['true']), { builtIn: true });
    expect(mapping.adds).toBe(0);
    await sandbox.delete();
  });

  const faults: [string, Refusals, boolean, string, string[]][] = [
    ['the VM cannot start', {}, true, 'start the vm backend', ['start sb']],
    ['no slot for the disk', { attach: 'no free slot' }, false, 'create the container', ['start sb', 'attach sb', 'stop']],
    ['the agent refuses the mount', { 'storage.mount': 'no' }, false, 'create the container', ['start sb', 'attach sb', 'storage.mount', 'release sb', 'stop']],
    [
      'the agent refuses the container',
      { 'container.create': 'no' },
      false,
      'create the container',
      ['start sb', 'attach sb', 'storage.mount', 'container.create sb', 'storage.unmount', 'release sb', 'stop'],
    ],
  ];
  for (const [what, refuse, failStart, step, expected] of faults) {
    it(`${what}: fails at "${step}" and undoes every earlier step, newest first`, async () => {
      setBackendStarter('vm', fakeStarter(calls, refuse, failStart));
      const err = await create(busyboxSpec(['true'])).catch((e: unknown) => e as NodevisorError);
      expect(err).toBeInstanceOf(NodevisorError);
      expect((err as NodevisorError).message).toMatch(new RegExp(`^createSandbox: ${step}: `));
      expect(calls).toEqual(expected);
      expect(readdirSync(stateRoot)).toEqual([]);
      expect(existsSync(mapping.root) ? readdirSync(mapping.root) : []).toEqual([]);
    });
  }

  it('a mapping that cannot be written removes the container and stops the backend', async () => {
    setBackendStarter('vm', fakeStarter(calls, {}));
    writeFileSync(join(work, 'not-a-dir'), '');
    const err = await create(busyboxSpec(['true']), { mapping: new ContainerIdMapping(join(work, 'not-a-dir')) }).catch(
      (e: unknown) => e as NodevisorError,
    );
    expect((err as NodevisorError).message).toMatch(/^createSandbox: container id mapping: /);
    expect(calls.slice(-4)).toEqual(['container.destroy sb', 'storage.unmount', 'release sb', 'stop']);
  });

  it('createContainer writes the mapping once (the seed wrote it twice), runs prestart hooks after the create, and undoes it all when they fail', async () => {
    setBackendStarter('vm', fakeStarter(calls, {}));
    const { sandbox } = await create(busyboxSpec(['sleep', '1']));
    const hookFile = join(work, 'pod-hook');
    const podSpec = (exitCode: number) =>
      busyboxSpec(['true'], {
        annotations: { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'sb' },
        hooks: { prestart: [hookWriting(hookFile, exitCode)] },
      });
    const rootFs = { source: image, type: 'ext4', mounted: false };
    mapping.adds = 0;
    calls.length = 0;
    await createContainer({ spec: podSpec(0), rootFs, containerId: 'c1', bundlePath: work, sandbox });
    expect(mapping.adds).toBe(1);
    expect(calls).toEqual(['attach c1', 'storage.mount', 'container.create c1']);
    expect(readFileSync(hookFile, 'utf8')).toBe('ran\n');

    calls.length = 0;
    const err = await createContainer({ spec: podSpec(5), rootFs, containerId: 'c2', bundlePath: work, sandbox }).then(
      () => new Error('createContainer c2 succeeded'),
      (e: unknown) => e as Error,
    );
    expect(err.message).toMatch(/^createContainer: prestart hooks: /);
    expect(calls).toEqual(['attach c2', 'storage.mount', 'container.create c2', 'container.destroy c2', 'storage.unmount', 'release c2']);
    expect(await mapping.fetch('c2')).toBeUndefined();
    expect(sandbox.containers.map((c) => c.id)).toEqual(['sb', 'c1']);
    await sandbox.delete();
    expect(await mapping.fetch('c1')).toBeUndefined();
  });

  it('two concurrent creations of one container id: one wins, the other fails with EEXIST and undoes nothing of the winner', async () => {
    setBackendStarter('vm', fakeStarter(calls, {}));
    const { sandbox } = await create(busyboxSpec(['true']));
    const spec = busyboxSpec(['true'], {
      annotations: { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'sb' },
    });
    const rootFs = { source: image, type: 'ext4', mounted: false };
    const results = await Promise.allSettled([
      createContainer({ spec, rootFs, containerId: 'twin', bundlePath: work, sandbox }),
      createContainer({ spec, rootFs, containerId: 'twin', bundlePath: work, sandbox }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(failed.reason).toMatchObject({ code: 'EEXIST' });
    expect(sandbox.containers.map((c) => c.id)).toEqual(['sb', 'twin']);
    expect(await mapping.fetch('twin')).toBe('sb');
    await sandbox.delete();
  });

  it('poststop hooks run at stop, after the container is destroyed and before its disk goes', async () => {
    const hookFile = join(work, 'poststop');
    setBackendStarter('vm', async (options) => {
      const backend = await fakeStarter(calls, {})(options);
      const attach = backend.attachDisk.bind(backend);
      backend.attachDisk = async (cid, path, ro) => {
        const disk = await attach(cid, path, ro);
        return { ...disk, release: async () => void calls.push(`release ${cid} (poststop ran: ${existsSync(hookFile)})`) };
      };
      return backend;
    });
    const { sandbox } = await create(busyboxSpec(['true'], { hooks: { poststop: [hookWriting(hookFile)] } }));
    await sandbox.delete();
    expect(calls).toContain('release sb (poststop ran: true)');
  });
});
