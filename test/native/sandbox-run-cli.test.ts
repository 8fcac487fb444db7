/**
 * Tier 2 (root): `nodevisor run` as a child process on a busybox bundle with isolation
 * 'namespaces': the container's output and exit status, stdin, a host-mounted rootfs, and Ctrl-C
 * (SIGINT) tearing everything down. Runs the built CLI (dist/, made by `npm ci` or
 * `npx tsc -p tsconfig.build.json`).
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { DEFAULT_MAPPING_ROOT } from '../../src/mapping/container-id-mapping.js';
import { DEFAULT_SANDBOX_STATE_ROOT } from '../../src/sandbox/types.js';
import { agentOnHost } from '../helpers/agent-process.js';
import { busyboxRootfsNeed, makeBusyboxImage } from '../helpers/busybox-rootfs.js';
import { need, needs, skipUnless } from '../helpers/needs.js';
import { busyboxSpec, loopDevicesOf, netnsInodeHook, netnsMountsOf, recordedInode, settled } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/tmp.js';

const cli = resolve(import.meta.dirname, '../../dist/src/cli/main.js');
const what = "nodevisor run (isolation 'namespaces')";
const canRun = skipUnless(
  what,
  agentOnHost,
  needs.command('nsenter'),
  needs.command('losetup'),
  busyboxRootfsNeed(),
  need(existsSync(cli), `${cli} is not built (npx tsc -p tsconfig.build.json)`),
);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function nodevisorRun(args: string[], options: { input?: string; onStdout?: (text: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Run> {
  const child = spawn(process.execPath, [cli, 'run', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
    options.onStdout?.(stdout, child);
  });
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin!.end(options.input ?? '');
  return new Promise((resolvePromise) => child.once('close', (code) => resolvePromise({ code, stdout, stderr })));
}

describe(what, canRun, () => {
  let work: string;
  let image: string;
  let n = 0;
  const id = () => `cli-${process.pid}-${++n}`;

  function bundle(args: string[], extra = {}): string {
    const dir = join(work, `bundle-${n + 1}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(busyboxSpec(args, extra)));
    return dir;
  }

  function leftovers(containerId: string) {
    return {
      loops: loopDevicesOf(image),
      state: existsSync(join(DEFAULT_SANDBOX_STATE_ROOT, containerId)),
      mapping: existsSync(join(DEFAULT_MAPPING_ROOT, containerId)),
    };
  }

  beforeAll(() => {
    work = tempDir('nodevisor-run-');
    image = makeBusyboxImage(work);
  });

  it("runs sh -c 'echo hi; exit 3' from an ext4 image: prints hi, exits 3, leaves nothing", async () => {
    const hook = join(work, 'run-hook');
    const dir = bundle(['sh', '-c', 'echo hi; echo to-stderr >&2; exit 3'], { hooks: { prestart: [netnsInodeHook(hook)] } });
    const cid = id();
    const result = await nodevisorRun(['--bundle', dir, '--isolation', 'namespaces', '--rootfs-device', image, cid]);
    expect(result).toEqual({ code: 3, stdout: 'hi\n', stderr: 'to-stderr\n' });
    expect(netnsMountsOf(recordedInode(hook))).toEqual([]);
    expect({ ...leftovers(cid), loops: await settled(() => loopDevicesOf(image), []) }).toEqual({ loops: [], state: false, mapping: false });
  });

  it("feeds its stdin to the container, with the bundle's own rootfs directory (host-mounted)", async () => {
    const dir = bundle(['cat']);
    cpSync(join(work, 'tree'), join(dir, 'rootfs'), { recursive: true, verbatimSymlinks: true });
    const result = await nodevisorRun(['--bundle', dir, '--isolation', 'namespaces', id()], { input: 'piped in\n' });
    expect(result).toEqual({ code: 0, stdout: 'piped in\n', stderr: '' });
  });

  it('tears everything down on Ctrl-C (SIGINT) and exits 130', async () => {
    const hook = join(work, 'sigint-hook');
    const dir = bundle(['sh', '-c', 'echo started; exec sleep 1000'], { hooks: { prestart: [netnsInodeHook(hook)] } });
    const cid = id();
    let sent = false;
    const result = await nodevisorRun(['--bundle', dir, '--isolation', 'namespaces', '--rootfs-device', image, cid], {
      onStdout: (text, child) => {
        if (!sent && text.includes('started')) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(sent).toBe(true);
    expect(result.code).toBe(130);
    expect(netnsMountsOf(recordedInode(hook))).toEqual([]);
    expect({ ...leftovers(cid), loops: await settled(() => loopDevicesOf(image), []) }).toEqual({ loops: [], state: false, mapping: false });
  });

  it('explains a bad command line', async () => {
    const result = await nodevisorRun(['--isolation', 'namespaces', 'x']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--bundle is required/);
    const vm = await nodevisorRun(['--bundle', work, 'x']);
    expect(vm.code).toBe(2);
    expect(vm.stderr).toMatch(/--isolation vm needs --kernel/);
  });
});
