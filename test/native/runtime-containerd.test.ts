/**
 * Tier 2 (root): nodevisor-runtime driven by Debian's containerd through its runc shim
 * (`ctr run --runc-binary`). The test starts its own containerd (socket, root and state under a
 * temp dir), imports a busybox OCI image it built from busybox-static, and runs containers with
 * isolation 'namespaces': output and exit status, then `ctr task exec`, `ps` and `kill` on a
 * running one, and that nothing of ours is left (processes, netns, mounts, mapping, state).
 *
 * A pod (a sandbox, then a container joining it by the CRI annotations) is run through the
 * runtime's own command line, as the CRI plugin's shim would.
 *
 * The same flow with isolation 'vm' is tier 5 (hardware KVM and a guest kernel): skipped here.
 * Runs the built runtime (dist/, made by `npm ci` or `npx tsc -p tsconfig.build.json`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestOptions } from 'vitest';

import { makeBusyboxOciImage } from '../fixtures/runtime/oci-image.js';
import { agentOnHost } from '../helpers/agent-process.js';
import { allOf, need, needs, skipUnless } from '../helpers/needs.js';
import { settled } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/tmp.js';

const runtimeMain = resolve(import.meta.dirname, '../../dist/src/runtime/main.js');
const IMAGE = 'localhost/nvbusybox:latest';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end. `untilExit`: resolve when it exits, not when its output pipes
 * close (a runtime `create` leaves them open in the relay it started).
 */
function spawnRun(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000, untilExit = false): Promise<Run> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin!.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((done) =>
    child.once(untilExit ? 'exit' : 'close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    }),
  );
}

/** The pids of `pid` and all its descendants (threads' children included). */
function processTree(pid: number): number[] {
  const out = [pid];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    let children = '';
    try {
      children = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const c of children.split(/\s+/).filter(Boolean)) out.push(...processTree(Number(c)));
  }
  return out;
}

/** Polls `check` until it is true or `timeoutMs` passed; resolves to its last answer. */
async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function alive(pids: number[]): number[] {
  return pids.filter((p) => existsSync(`/proc/${p}`));
}

/** /run/netns entries that are the network namespace of `pid`. */
function netnsOf(pid: number): string[] {
  const ino = statSync(`/proc/${pid}/ns/net`).ino;
  if (!existsSync('/run/netns')) return [];
  return readdirSync('/run/netns')
    .map((n) => join('/run/netns', n))
    .filter((p) => {
      try {
        return statSync(p).ino === ino;
      } catch {
        return false;
      }
    });
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(dir));
}

function list(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

function flow(isolation: 'namespaces' | 'vm', canRun: TestOptions, configExtra = '') {
  describe(`nodevisor-runtime under containerd's runc shim (isolation '${isolation}')`, canRun, () => {
    let work: string;
    let containerd: ChildProcess | undefined;
    let address: string;
    let wrapper: string;
    let runcRoot: string;
    let stateRoot: string;
    let mappingRoot: string;
    let env: NodeJS.ProcessEnv;

    const ctr = (args: string[], timeoutMs?: number) => spawnRun('ctr', ['--address', address, ...args], env, timeoutMs);
    const runArgs = () => ['--runc-binary', wrapper, '--runc-root', runcRoot, '--fifo-dir', join(work, 'fifo')];

    // containerd 1.6 keeps its shims' sockets in /run/containerd/s whatever its state dir is.
    const runContainerdExisted = existsSync('/run/containerd');

    beforeAll(async () => {
      work = tempDir('nodevisor-containerd-');
      address = join(work, 'containerd.sock');
      runcRoot = join(work, 'runc');
      stateRoot = join(work, 'sandboxes');
      mappingRoot = join(work, 'mapping');
      const conf = join(work, 'nodevisor.toml');
      writeFileSync(conf, `[runtime]\nisolation = "${isolation}"\nstate_root = "${stateRoot}"\nmapping_root = "${mappingRoot}"\n${configExtra}`);
      env = { ...process.env, NODEVISOR_CONF_FILE: conf };
      // The runtime binary the shim runs: a wrapper, as the built main.js is not executable.
      wrapper = join(work, 'nodevisor-runtime');
      writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${runtimeMain}" "$@"\n`);
      chmodSync(wrapper, 0o755);
      const config = join(work, 'containerd.toml');
      writeFileSync(
        config,
        [
          'version = 2',
          `root = "${join(work, 'root')}"`,
          `state = "${join(work, 'state')}"`,
          'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
          '[grpc]',
          `  address = "${address}"`,
          '[ttrpc]',
          `  address = "${address}.ttrpc"`,
          '',
        ].join('\n'),
      );
      const log = openSync(join(work, 'containerd.log'), 'a');
      containerd = spawn('containerd', ['--config', config], { stdio: ['ignore', log, log], env });
      const up = await eventually(async () => (await ctr(['version'], 5000)).code === 0, 20_000);
      if (!up) throw new Error(`containerd did not come up: ${readFileSync(join(work, 'containerd.log'), 'utf8').slice(-2000)}`);
      const image = makeBusyboxOciImage(work);
      const imported = await ctr(['images', 'import', '--base-name', 'localhost/nvbusybox', image]);
      expect(imported.stderr).toBe('');
      expect(imported.code).toBe(0);
    }, 60_000);

    afterAll(async () => {
      // After a failed test: what containerd did not delete goes with the runtime's own delete.
      if (!containerd || containerd.exitCode !== null) return;
      for (const id of (await ctr(['container', 'ls', '-q'])).stdout.split('\n').filter(Boolean)) {
        await ctr(['task', 'rm', '--force', id]);
        await ctr(['container', 'rm', id]);
      }
      for (const id of list(join(runcRoot, 'default'))) await spawnRun(wrapper, ['--root', join(runcRoot, 'default'), 'delete', '--force', id], env);
      containerd.kill('SIGTERM');
      await new Promise((r) => containerd!.once('exit', r));
      if (!runContainerdExisted) {
        for (const dir of ['/run/containerd/s', '/run/containerd/fifo', '/run/containerd']) if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
      }
    });

    it("ctr run --rm ... sh -c 'echo hi; exit 3' prints hi and exits 3", async () => {
      const run = await ctr(['run', ...runArgs(), '--rm', IMAGE, 't1', 'sh', '-c', 'echo hi; exit 3']);
      expect(run.stderr).toBe('');
      expect(run.stdout).toBe('hi\n');
      expect(run.code).toBe(3);
      expect(list(join(runcRoot, 'default'))).toEqual([]);
      expect(list(mappingRoot)).toEqual([]);
      expect(list(stateRoot)).toEqual([]);
    }, 60_000);

    it('ctr run -t: the pty master reaches the shim over the console socket (python3 helper)', async () => {
      // ctr needs a terminal of its own for -t: script(1) gives it one.
      const command = `ctr --address ${address} run -t ${runArgs().join(' ')} --rm ${IMAGE} t4 sh -c 'echo tty-hi; exit 5'`;
      const run = await spawnRun('script', ['-q', '-e', '-c', command, '/dev/null'], env);
      expect(run.stdout).toContain('tty-hi');
      expect(run.code).toBe(5);
      expect(list(join(runcRoot, 'default'))).toEqual([]);
      expect(list(stateRoot)).toEqual([]);
    }, 60_000);

    it('ctr task exec (with and without -t), ps and kill work on a running container; nothing of ours is left after', async () => {
      const started = await ctr(['run', ...runArgs(), '-d', IMAGE, 't2', 'sleep', '600']);
      expect(started.stderr).toBe('');
      expect(started.code).toBe(0);
      // What runs for the container: the daemon and its agent, the container's processes.
      const state = JSON.parse(readFileSync(join(runcRoot, 'default', 't2', 'state.json'), 'utf8')) as { daemonPid: number; pid: number };
      const tree = processTree(state.daemonPid);
      expect(tree.length).toBeGreaterThan(2);
      const netns = netnsOf(tree[tree.length - 1]!);
      expect(netns).toHaveLength(1);
      try {
        const tasks = await ctr(['task', 'ls']);
        expect(tasks.stdout).toMatch(new RegExp(`^t2\\s+${state.pid}\\s+RUNNING`, 'm'));

        const exec = await ctr(['task', 'exec', '--fifo-dir', join(work, 'fifo'), '--exec-id', 'e1', 't2', 'sh', '-c', 'echo from-exec; ls /proc/1/ >/dev/null; exit 4']);
        expect(exec.stderr).toBe('');
        expect(exec.stdout).toBe('from-exec\n');
        expect(exec.code).toBe(4);

        const ttyExec = `ctr --address ${address} task exec -t --fifo-dir ${join(work, 'fifo')} --exec-id e2 t2 sh -c 'echo tty-exec; exit 6'`;
        const ttyRun = await spawnRun('script', ['-q', '-e', '-c', ttyExec, '/dev/null'], env);
        expect(ttyRun.stdout).toContain('tty-exec');
        expect(ttyRun.code).toBe(6);

        const ps = await ctr(['task', 'ps', 't2']);
        expect(ps.code).toBe(0);
        expect(ps.stdout).toMatch(new RegExp(`^${state.pid}\\s`, 'm'));

        // Execs killed by the shim: it signals the relay's pid. SIGTERM is passed on by the
        // relay; SIGKILL ends the relay, and the daemon then kills the process.
        for (const [execId, signal] of [['e3', 'SIGTERM'], ['e4', 'SIGKILL']] as const) {
          const detached = await ctr(['task', 'exec', '--fifo-dir', join(work, 'fifo'), '--detach', '--exec-id', execId, 't2', 'sleep', '600']);
          expect(detached).toMatchObject({ code: 0, stderr: '' });
          const pidsBefore = (await ctr(['task', 'ps', 't2'])).stdout.match(/^\d+/gm) ?? [];
          expect(pidsBefore).toHaveLength(2);
          const killed = await ctr(['task', 'kill', '--exec-id', execId, '--signal', signal, 't2']);
          expect(killed).toMatchObject({ code: 0, stderr: '' });
          expect(await eventually(async () => ((await ctr(['task', 'ps', 't2'])).stdout.match(/^\d+/gm) ?? []).length === 1, 10_000)).toBe(true);
        }

        // sleep is its PID namespace's init, as under runc: only SIGKILL is sure to end it.
        const kill = await ctr(['task', 'kill', '--signal', 'SIGKILL', 't2']);
        expect(kill.stderr).toBe('');
        expect(kill.code).toBe(0);
        expect(await eventually(async () => /^t2\s+\d+\s+STOPPED/m.test((await ctr(['task', 'ls'])).stdout), 20_000)).toBe(true);
      } finally {
        await ctr(['task', 'rm', '-f', 't2']);
        await ctr(['container', 'rm', 't2']);
      }
      expect(await settled(() => alive(tree), [], 10_000)).toEqual([]);
      expect(netns.filter((p) => existsSync(p))).toEqual([]);
      expect(list(join(runcRoot, 'default'))).toEqual([]);
      expect(list(mappingRoot)).toEqual([]);
      expect(list(stateRoot)).toEqual([]);
      expect(mountsUnder(stateRoot)).toEqual([]);
      expect(mountsUnder(join(work, 'state'))).toEqual([]);
    }, 90_000);

    it('reports a command missing from the image as a failed start, with the reason, and leaves nothing', async () => {
      const run = await ctr(['run', ...runArgs(), '--rm', IMAGE, 't3', '/no/such/binary']);
      expect(run.code).not.toBe(0);
      expect(run.stderr).toContain('OCI runtime start failed: agent container.start: execve: No such file or directory');
      // ctr's own cleanup deletes the task unless the shim has not yet seen the pid-file process
      // exit (a race inside ctr and the shim, runc's too): then a forced delete must do it.
      if (/^t3$/m.test((await ctr(['task', 'ls', '-q'])).stdout)) {
        const rm = await ctr(['task', 'rm', '--force', 't3']);
        expect(rm.stderr).toBe('');
        await ctr(['container', 'rm', 't3']);
      }
      expect((await ctr(['task', 'ls', '-q'])).stdout).not.toMatch(/^t3$/m);
      expect((await ctr(['container', 'ls', '-q'])).stdout).not.toMatch(/^t3$/m);
      expect(list(join(runcRoot, 'default'))).toEqual([]);
      expect(list(stateRoot)).toEqual([]);
      expect(list(mappingRoot)).toEqual([]);
    }, 60_000);
  });
}

/**
 * A pod as the CRI plugin makes one, through the runtime's own command line (no containerd):
 * the sandbox container, then a container joining it by the CRI annotations.
 */
function podFlow(canRun: TestOptions) {
  describe("nodevisor-runtime through its own command line (a pod, a failing create)", canRun, () => {
    it('creates the sandbox once under concurrent creates, a container in it, maps it, runs it, and deletes both without leftovers', async () => {
      const work = tempDir('nodevisor-runtime-pod-');
      const root = join(work, 'root');
      const stateRoot = join(work, 'sandboxes');
      const mappingRoot = join(work, 'mapping');
      const conf = join(work, 'nodevisor.toml');
      writeFileSync(conf, `[runtime]\nisolation = "namespaces"\nstate_root = "${stateRoot}"\nmapping_root = "${mappingRoot}"\n`);
      const env = { ...process.env, NODEVISOR_CONF_FILE: conf };
      const rt = (args: string[], untilExit = false) => spawnRun(process.execPath, [runtimeMain, '--root', root, ...args], env, 30_000, untilExit);
      const rootfs = join(work, 'rootfs');
      mkdirSync(join(rootfs, 'bin'), { recursive: true });
      for (const d of ['proc', 'dev', 'tmp']) mkdirSync(join(rootfs, d));
      copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
      for (const a of ['sh', 'sleep', 'echo', 'hostname']) symlinkSync('busybox', join(rootfs, 'bin', a));
      const bundle = (name: string, args: string[], annotations: Record<string, string>) => {
        const dir = join(work, name);
        mkdirSync(dir);
        writeFileSync(
          join(dir, 'config.json'),
          JSON.stringify({
            ociVersion: '1.0.2',
            process: { terminal: false, user: { uid: 0, gid: 0 }, args, env: ['PATH=/bin'], cwd: '/' },
            root: { path: rootfs },
            hostname: 'pod',
            mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
            annotations,
            linux: { namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }] },
          }),
        );
        return dir;
      };
      const sandboxBundle = bundle('sandbox', ['sleep', '600'], { 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-id': 'pod1' });
      const appBundle = bundle('app', ['sh', '-c', 'echo in-pod $(hostname)'], { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'pod1' });

      // Two creates of one id at once (a retry racing the first): the lock lets one in, the other is told.
      const both = await Promise.all([1, 2].map((n) => rt(['create', '--bundle', sandboxBundle, '--pid-file', join(work, `pod1-${n}.pid`), 'pod1'], true)));
      expect(both.map((r) => r.code).sort()).toEqual([0, 1]);
      expect(both.find((r) => r.code === 1)!.stderr).toContain('container with id exists: pod1');
      expect(list(work).filter((f) => f.endsWith('.pid'))).toHaveLength(1);
      const daemonPid = (JSON.parse(readFileSync(join(root, 'pod1', 'state.json'), 'utf8')) as { daemonPid: number }).daemonPid;
      try {
        expect((await rt(['start', 'pod1'])).code).toBe(0);
        // The app's relay inherits create's stdout: it ends when the app has exited.
        const created = rt(['create', '--bundle', appBundle, '--pid-file', join(work, 'app.pid'), 'app']);
        await eventually(async () => existsSync(join(root, 'app', 'state.json')), 20_000);
        expect(list(mappingRoot)).toEqual(['app', 'pod1']);
        expect(readdirSync(join(mappingRoot, 'app'))).toEqual(['pod1']);
        expect(JSON.parse((await rt(['state', 'app'])).stdout)).toMatchObject({ id: 'app', status: 'created' });
        expect((await rt(['start', 'app'])).code).toBe(0);
        const output = await created;
        expect(output).toMatchObject({ code: 0, stdout: 'in-pod pod\n', stderr: '' });
        expect(JSON.parse((await rt(['state', 'app'])).stdout)).toMatchObject({ status: 'stopped', pid: 0 });
        expect(JSON.parse((await rt(['state', 'pod1'])).stdout)).toMatchObject({ status: 'running' });
        const running = await rt(['delete', 'pod1']);
        expect(running.code).toBe(1);
        expect(running.stderr).toContain('cannot delete container pod1 that is not stopped');
        expect((await rt(['delete', 'app'])).code).toBe(0);
        expect(list(mappingRoot)).toEqual(['pod1']);
      } finally {
        await rt(['delete', '--force', 'app']);
        await rt(['delete', '--force', 'pod1']);
      }
      expect(await eventually(async () => alive([daemonPid]).length === 0, 10_000)).toBe(true);
      expect(list(root)).toEqual([]);
      expect(list(mappingRoot)).toEqual([]);
      expect(list(stateRoot)).toEqual([]);
    }, 60_000);

    it('a create whose prestart hook fails says so, and leaves no daemon, state or mapping (createSandbox undoes its netns)', async () => {
      const work = tempDir('nodevisor-runtime-fail-');
      const root = join(work, 'root');
      const stateRoot = join(work, 'sandboxes');
      const mappingRoot = join(work, 'mapping');
      const conf = join(work, 'nodevisor.toml');
      writeFileSync(conf, `[runtime]\nisolation = "namespaces"\nstate_root = "${stateRoot}"\nmapping_root = "${mappingRoot}"\n`);
      const rootfs = join(work, 'rootfs');
      mkdirSync(join(rootfs, 'bin'), { recursive: true });
      copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
      symlinkSync('busybox', join(rootfs, 'bin/sh'));
      writeFileSync(
        join(work, 'config.json'),
        JSON.stringify({
          ociVersion: '1.0.2',
          process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['sh'], env: ['PATH=/bin'], cwd: '/' },
          root: { path: rootfs },
          hooks: { prestart: [{ path: '/bin/sh', args: ['sh', '-c', 'echo hook-says-no >&2; exit 7'] }] },
          linux: { namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'mount' }] },
        }),
      );
      const log = join(work, 'log.json');
      const run = await spawnRun(process.execPath, [runtimeMain, '--root', root, '--log', log, '--log-format', 'json', 'create', '--bundle', work, 'bad1'], {
        ...process.env,
        NODEVISOR_CONF_FILE: conf,
      });
      expect(run.code).toBe(1);
      const line = JSON.parse(readFileSync(log, 'utf8').trim().split('\n').pop()!) as { level: string; msg: string };
      expect(line.level).toBe('error');
      expect(line.msg).toMatch(/prestart/);
      expect(list(root)).toEqual([]);
      expect(list(stateRoot)).toEqual([]);
      expect(list(mappingRoot)).toEqual([]);
      // No daemon of this root is left (its argv names the socket under it).
      const ours = readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(root);
          } catch {
            return false;
          }
        });
      expect(await eventually(async () => alive(ours.map(Number)).length === 0, 10_000)).toBe(true);
    }, 60_000);
  });
}

const what = "nodevisor-runtime under containerd (isolation 'namespaces')";
const namespacesNeed = allOf(
  agentOnHost,
  needs.command('containerd'),
  needs.command('ctr'),
  needs.command('tar'),
  needs.command('python3'), // it passes terminals to the console socket
  needs.command('script'),
  need(existsSync('/bin/busybox'), '/bin/busybox is missing (apt-get install busybox-static)'),
  need(existsSync(runtimeMain), `${runtimeMain} is not built (npx tsc -p tsconfig.build.json)`),
);
const canRunNamespaces = skipUnless(what, namespacesNeed);
flow('namespaces', canRunNamespaces);
podFlow(canRunNamespaces);

const vmWhat = "nodevisor-runtime under containerd (isolation 'vm', tier 5)";
const kernel = process.env.NODEVISOR_TEST_KERNEL ?? '';
const canRunVm = skipUnless(
  vmWhat,
  needs.hardwareKvm,
  need(kernel !== '', 'NODEVISOR_TEST_KERNEL is not set (set it, and NODEVISOR_TEST_INITRD, to a guest from `nodevisor guest build`)'),
  namespacesNeed,
);
flow('vm', canRunVm, `[hypervisor.nodevisor]\nkernel = "${kernel}"\ninitrd = "${process.env.NODEVISOR_TEST_INITRD ?? ''}"\n`);
