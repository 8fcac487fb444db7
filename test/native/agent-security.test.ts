/**
 * The guest agent against a hostile container and hostile input (issue 10, "the guest agent"):
 * the agent runs on the host (test/helpers/agent-process.ts) in a private mount namespace; the
 * containers are real ones (mount, PID, UTS, IPC namespaces) over a busybox directory tree, and
 * the disks are ext4 images on loop devices.
 *
 * Run against an older agent with NODEVISOR_AGENT=<path> to see which defects it has.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { AgentProcess as ProcessSpec, ExitStatus } from '../../src/agent/messages.js';
import type { NodevisorError } from '../../src/errors.js';
import { AgentProcess, agentOnHost } from '../helpers/agent-process.js';
import { busyboxRootfsNeed, makeBusyboxImage } from '../helpers/busybox-rootfs.js';
import { needs, skipUnless } from '../helpers/needs.js';
import { tempDir } from '../helpers/tmp.js';

const hostileContainers = skipUnless(
  'agent security tests',
  agentOnHost,
  needs.command('losetup'),
  busyboxRootfsNeed(),
);

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

/** Every capability this kernel knows and this test process may hand on (its bounding set), by name. */
const ALL_CAPS = (() => {
  const names = [
    'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
    'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
    'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE',
    'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
    'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP',
    'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ',
    'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
  ];
  const bounding = BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`);
  return names.filter((_, n) => (bounding >> BigInt(n)) & 1n);
})();

/** A capability mask as /proc/<pid>/status prints it (16 hex digits). */
function capMask(numbers: number[]): string {
  return numbers.reduce((mask, n) => mask | (1n << BigInt(n)), 0n).toString(16).padStart(16, '0');
}

/** Fields of a /proc/<pid>/status text. */
function statusFields(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
  );
}

function blockdevReadOnly(device: string): boolean {
  return execFileSync('blockdev', ['--getro', device], { encoding: 'utf8' }).trim() === '1';
}

describe('nodevisor-agent against hostile containers and input', hostileContainers, () => {
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

  let containers = 0;
  /** Runs one container to its end → its exit status and stdout (+ stderr). */
  async function run(process: ProcessSpec): Promise<{ status: ExitStatus; out: string }> {
    const c = { containerId: `c${++containers}` };
    await agent.client.createContainer({ ...c, rootfs: tree, process: { env: ['PATH=/bin'], ...process } });
    await agent.client.startContainer(c.containerId);
    const status = await agent.client.wait(c);
    const out = agent.output(c) + agent.output(c, 'stderr');
    await agent.client.destroyContainer(c.containerId);
    return { status, out };
  }

  afterAll(async () => {
    await agent?.stop();
    for (const loop of loops) {
      execFileSync('blockdev', ['--setrw', loop]);
      execFileSync('losetup', ['-d', loop]);
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(
    'exec race (defect 1): a root process in the container grabbing fds of each new pid finds no agent fd in 10,000 attempts',
    { ...skipUnless('the exec race test (builds its attacker)', needs.command('gcc')), timeout: 120_000 },
    async () => {
      const grab = buildIntoRootfs(tree, 'pidfd_grab');
      const c = { containerId: 'race' };
      // PID 1 of the container is the attacker, with every capability (CAP_SYS_PTRACE included):
      // what keeps it from the agent's fds must be the way execs are made, not its privileges.
      const all = { bounding: ALL_CAPS, effective: ALL_CAPS, permitted: ALL_CAPS };
      await agent.client.createContainer({
        ...c,
        rootfs: tree,
        process: { args: [grab, '10000'], capabilities: all, noNewPrivileges: false },
      });
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
  );

  it('every fd the agent holds beyond stdio is close-on-exec (channel, signalfd, pidfds, pipes)', async () => {
    const c = { containerId: 'cloexec' };
    await agent.client.createContainer({ ...c, rootfs: tree, process: { args: ['sleep', '30'] } });
    await agent.client.startContainer(c.containerId);
    const fds = readdirSync(`/proc/${agent.pid}/fd`).map(Number).filter((fd) => fd > 2);
    expect(fds.length).toBeGreaterThan(5); // channel, signalfd, the container's pidfd and pipes
    const notCloexec = fds.filter((fd) => {
      const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${agent.pid}/fdinfo/${fd}`, 'utf8'))![1]!;
      return (parseInt(flags, 8) & 0o2000000) === 0; // O_CLOEXEC
    });
    expect(notCloexec).toEqual([]);
    await agent.client.destroyContainer(c.containerId);
  });

  describe('capabilities, no_new_privs, rlimits, seccomp (defect 2)', () => {
    const CAP = { CHOWN: 0, KILL: 5, NET_BIND_SERVICE: 10, SYS_PTRACE: 19, AUDIT_WRITE: 29 };

    it("without capabilities in the request, a container gets runc's defaults and no_new_privs", async () => {
      const { status, out } = await run({ args: ['cat', '/proc/self/status'] });
      expect(status).toEqual({ exitCode: 0, signal: null });
      const f = statusFields(out);
      const defaults = capMask([CAP.AUDIT_WRITE, CAP.KILL, CAP.NET_BIND_SERVICE]);
      expect({ eff: f.CapEff, bnd: f.CapBnd, prm: f.CapPrm, inh: f.CapInh, amb: f.CapAmb, nnp: f.NoNewPrivs }).toEqual({
        eff: defaults, bnd: defaults, prm: defaults, inh: capMask([]), amb: capMask([]), nnp: '1',
      });
    });

    it('CapEff, CapBnd, CapPrm, CapInh and CapAmb match the sets of the request', async () => {
      const set = ['CAP_CHOWN', 'CAP_KILL', 'CAP_SYS_PTRACE'];
      const { out } = await run({
        args: ['cat', '/proc/self/status'],
        capabilities: { bounding: set, effective: set, permitted: set, inheritable: ['CAP_KILL'] },
        noNewPrivileges: false,
      });
      const f = statusFields(out);
      const mask = capMask([CAP.CHOWN, CAP.KILL, CAP.SYS_PTRACE]);
      expect({ eff: f.CapEff, bnd: f.CapBnd, prm: f.CapPrm, inh: f.CapInh, nnp: f.NoNewPrivs }).toEqual({
        eff: mask, bnd: mask, prm: mask, inh: capMask([CAP.KILL]), nnp: '0',
      });
    });

    it('a non-root process keeps exactly its ambient capabilities across execve', async () => {
      const set = ['CAP_NET_BIND_SERVICE'];
      const { out } = await run({
        args: ['cat', '/proc/self/status'],
        uid: 1000,
        gid: 1000,
        capabilities: { bounding: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'], effective: set, permitted: set, inheritable: set, ambient: set },
      });
      const f = statusFields(out);
      expect(f.Uid).toMatch(/^1000\s+1000\s+1000\s+1000$/);
      expect({ eff: f.CapEff, amb: f.CapAmb, bnd: f.CapBnd }).toEqual({
        eff: capMask([CAP.NET_BIND_SERVICE]), amb: capMask([CAP.NET_BIND_SERVICE]), bnd: capMask([CAP.KILL, CAP.NET_BIND_SERVICE]),
      });
    });

    it('mknod of the console device fails without CAP_MKNOD, and works with it', async () => {
      const denied = await run({ args: ['sh', '-c', 'mknod /tmp/console-a c 5 1 && echo made'] });
      expect(denied.out).not.toContain('made');
      expect(denied.out).toMatch(/Operation not permitted/);
      expect(denied.status.exitCode).not.toBe(0);
      const allowed = await run({
        args: ['sh', '-c', 'mknod /tmp/console-b c 5 1 && echo made'],
        capabilities: { bounding: ['CAP_MKNOD'], effective: ['CAP_MKNOD'], permitted: ['CAP_MKNOD'] },
      });
      expect(allowed.out).toContain('made');
      rmSync(join(tree, 'tmp/console-b'), { force: true });
    });

    it('execs get the capabilities and no_new_privs of their own request too', async () => {
      const c = { containerId: 'exec-caps' };
      await agent.client.createContainer({ ...c, rootfs: tree, process: { args: ['sleep', '30'], capabilities: { bounding: ALL_CAPS, effective: ALL_CAPS, permitted: ALL_CAPS }, noNewPrivileges: false } });
      await agent.client.startContainer(c.containerId);
      const ref = { ...c, execId: 'status' };
      await agent.client.exec(c.containerId, ref.execId, { args: ['cat', '/proc/self/status'] });
      expect(await agent.client.wait(ref)).toEqual({ exitCode: 0, signal: null });
      const f = statusFields(agent.output(ref));
      const defaults = capMask([CAP.AUDIT_WRITE, CAP.KILL, CAP.NET_BIND_SERVICE]);
      expect({ eff: f.CapEff, bnd: f.CapBnd, nnp: f.NoNewPrivs }).toEqual({ eff: defaults, bnd: defaults, nnp: '1' });
      await agent.client.destroyContainer(c.containerId);
    });

    it('sets rlimits', async () => {
      const { out } = await run({
        args: ['sh', '-c', 'ulimit -n; ulimit -Hn; grep "Max open files" /proc/self/limits'],
        rlimits: [{ type: 'RLIMIT_NOFILE', soft: 123, hard: 456 }],
      });
      expect(out.split('\n').slice(0, 2)).toEqual(['123', '456']);
      expect(out).toMatch(/Max open files\s+123\s+456/);
    });

    it('a seccomp profile returning EPERM (and another errno, and one by argument value) is observed', async () => {
      const { status, out } = await run({
        args: ['sh', '-c', 'mkdir /tmp/sc-a; echo "mkdir=$?"; touch /tmp/sc-b && echo touched; kill -0 $$ && echo kill0; kill -USR1 $$; echo "usr1=$?"'],
        seccomp: {
          defaultAction: 'SCMP_ACT_ALLOW',
          architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
          syscalls: [
            { names: ['mkdir', 'mkdirat', 'no_such_call_on_x86_64'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
            { names: ['openat', 'open', 'creat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13, args: [{ index: 2, value: 0o100, valueTwo: 0o100, op: 'SCMP_CMP_MASKED_EQ' }] },
            { names: ['kill'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: 10, op: 'SCMP_CMP_EQ' }] },
          ],
        },
      });
      expect(status.exitCode).toBe(0);
      expect(out).toMatch(/mkdir: can't create directory '\/tmp\/sc-a': Operation not permitted/);
      expect(out).toContain('mkdir=1');
      expect(out).toMatch(/touch: \/tmp\/sc-b: Permission denied/); // O_CREAT: EACCES
      expect(out).not.toContain('touched');
      expect(out).toContain('kill0'); // signal 0 passes the argument condition
      expect(out).toContain('usr1=1'); // SIGUSR1 (10) does not
    });

    it('without noNewPrivileges the filter goes in before the privileges are dropped, and still holds', async () => {
      const { status, out } = await run({
        args: ['sh', '-c', 'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status; mkdir /tmp/sc-c; echo "mkdir=$?"'],
        noNewPrivileges: false,
        seccomp: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] },
      });
      expect(status.exitCode).toBe(0);
      expect(out).toMatch(/NoNewPrivs:\s+0\n/);
      expect(out).toMatch(/Seccomp:\s+2\n/); // filter mode
      expect(out).toContain('mkdir=1');
      expect(out).toMatch(/Operation not permitted/);
    });

    it('refuses unknown capability names, rlimits and seccomp actions, naming the field', async () => {
      const create = (process: ProcessSpec) => agent.client.createContainer({ containerId: 'bad', rootfs: tree, process });
      await expect(create({ args: ['true'], capabilities: { bounding: ['CAP_NOPE'] } })).rejects.toMatchObject({
        code: 'EINVAL',
        message: expect.stringContaining('process.capabilities.bounding: unknown capability "CAP_NOPE"'),
      });
      await expect(create({ args: ['true'], rlimits: [{ type: 'RLIMIT_NOPE', soft: 1, hard: 1 }] })).rejects.toMatchObject({
        code: 'EINVAL',
        message: expect.stringContaining('process.rlimits[0].type'),
      });
      // Above fs.nr_open no one may raise RLIMIT_NOFILE: the failing step names the limit.
      const tooMany = Number(readFileSync('/proc/sys/fs/nr_open', 'utf8')) + 1;
      await expect(create({ args: ['true'], rlimits: [{ type: 'RLIMIT_NOFILE', soft: tooMany, hard: tooMany }] })).rejects.toMatchObject({
        code: 'EPERM',
        message: expect.stringContaining('setrlimit RLIMIT_NOFILE'),
      });
      await expect(create({ args: ['true'], seccomp: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_NOTIFY' }] } })).rejects.toMatchObject({
        code: 'EINVAL',
        message: expect.stringContaining('process.seccomp.syscalls[0].action'),
      });
    });

    it("the checked-in system call table matches this machine's kernel headers", () => {
      const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
      const generated = execFileSync(join(root, 'native/guest/agent/gen_syscall_table.sh'), { encoding: 'utf8' });
      expect(generated).toBe(readFileSync(join(root, 'native/guest/agent/syscall_table.inc'), 'utf8'));
    });
  });

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


describe('AgentError (defect 4)', skipUnless('the AgentError check (builds a program with g++)', needs.command('g++')), () => {
  it("is a std::exception, so the main loop's catch-all keeps PID 1 alive when the channel reopen fails", () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
    const bin = join(tempDir('nodevisor-agent-error-'), 'agent_error_check');
    execFileSync('g++', ['-std=c++20', '-D_GNU_SOURCE', '-I', join(root, 'native'), '-o', bin, join(fixtures, 'agent_error_check.cc')]);
    expect(execFileSync(bin, { encoding: 'utf8' })).toBe('caught: open the agent channel /dev/hvc0: No such file or directory\n');
  });
});
