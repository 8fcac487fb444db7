import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { NodevisorError } from '../../src/errors.js';
import { postStartHooks, postStopHooks, preStartHooks } from '../../src/hooks/hooks.js';
import { HOOK_OUTPUT_LIMIT, runHook } from '../../src/hooks/run-hook.js';
import type { HookState } from '../../src/hooks/state.js';
import type { Spec } from '../../src/oci/spec.js';
import { minimalSpec } from '../helpers/spec.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

/** Writes an executable shell script and returns its path. */
function script(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

/** True while `pid` runs; a zombie (dead, waiting for its parent to reap it) counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const state: HookState = { ociVersion: '1.0.2', id: 'c1', status: 'creating', pid: 4242, bundle: '/b', annotations: { k: 'v' } };

describe('runHook', () => {
  it('hands the state JSON to the hook on stdin, and argv verbatim', async () => {
    const dir = tempDir();
    const out = join(dir, 'out');
    // The hook checks its own input: it fails unless the state names container c1.
    const hook = script(
      dir,
      'check-state.sh',
      `cat > ${out}.json; printf '%s\\n' "$0" "$@" > ${out}.argv; grep -q '"id":"c1"' ${out}.json || { echo "bad state" >&2; exit 9; }`,
    );
    await runHook({ path: hook, args: ['my-argv0', 'first', 'two words'] }, state);
    expect(JSON.parse(readFileSync(`${out}.json`, 'utf8'))).toEqual(state);
    // /bin/sh reports the script path as $0; argv[0] itself is checked with a binary below.
    expect(readFileSync(`${out}.argv`, 'utf8').split('\n').slice(1, 3)).toEqual(['first', 'two words']);
    await expect(runHook({ path: hook }, { ...state, id: 'other' })).rejects.toThrow(/exit status 9: stdout: , stderr: bad state/);
  });

  it('passes argv[0] to the executable verbatim (no PATH lookup, no rewriting)', async () => {
    const dir = tempDir();
    const out = join(dir, 'cmdline');
    // The kernel's record of the process's argv, read by the process itself.
    await runHook({ path: '/bin/sh', args: ['custom-argv0', '-c', `cat /proc/$$/cmdline > ${out}`] }, state);
    expect(readFileSync(out, 'utf8').split('\0').slice(0, 2)).toEqual(['custom-argv0', '-c']);
    // Without args, argv is [path].
    const hook = script(dir, 'self.sh', `cat /proc/$$/cmdline > ${out}`);
    await runHook({ path: hook }, state);
    expect(readFileSync(out, 'utf8').split('\0')).toContain(hook);
  });

  it('inherits the environment when env is absent, and uses only env when given', async () => {
    const dir = tempDir();
    const out = join(dir, 'env');
    const hook = script(dir, 'env.sh', `env > ${out}`);
    process.env.NODEVISOR_TEST_INHERITED = 'from-parent';
    try {
      await runHook({ path: hook }, state);
      expect(readFileSync(out, 'utf8')).toContain('NODEVISOR_TEST_INHERITED=from-parent');
      await runHook({ path: hook, env: ['ONLY=this=one', 'PATH=/usr/bin:/bin'] }, state);
      const lines = readFileSync(out, 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('PWD=') && !l.startsWith('SHLVL=') && !l.startsWith('_='));
      expect(lines.sort()).toEqual(['ONLY=this=one', 'PATH=/usr/bin:/bin']);
      await runHook({ path: hook, env: [] }, state);
      expect(readFileSync(out, 'utf8')).not.toContain('NODEVISOR_TEST_INHERITED');
    } finally {
      delete process.env.NODEVISOR_TEST_INHERITED;
    }
  });

  it('puts stdout and stderr in the error of a failing hook', async () => {
    const dir = tempDir();
    const hook = script(dir, 'fail.sh', 'echo to-out; echo to-err >&2; exit 3');
    const err = (await runHook({ path: hook }, state).catch((e: unknown) => e)) as NodevisorError;
    expect(err).toBeInstanceOf(NodevisorError);
    expect(err.code).toBe('EHOOK_FAILED');
    expect(err.message).toBe(`hook ${hook} failed: exit status 3: stdout: to-out\n, stderr: to-err\n`);
  });

  it('reports a hook killed by a signal', async () => {
    const dir = tempDir();
    const hook = script(dir, 'segv.sh', 'kill -SEGV $$');
    await expect(runHook({ path: hook }, state)).rejects.toThrow(/killed by signal SIGSEGV/);
  });

  it('kills a hook that overruns its timeout, and what it started', async () => {
    const dir = tempDir();
    const pids = join(dir, 'pids');
    const hook = script(dir, 'slow.sh', `sleep 30 & echo $$ $! > ${pids}; wait`);
    const started = Date.now();
    const err = (await runHook({ path: hook, timeout: 1 }, state).catch((e: unknown) => e)) as NodevisorError;
    expect(err.code).toBe('EHOOK_TIMEOUT');
    expect(err.message).toMatch(/^hook timeout: /);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    const [hookPid, sleepPid] = readFileSync(pids, 'utf8').trim().split(' ').map(Number);
    expect(alive(hookPid!)).toBe(false);
    // The orphaned sleep is killed with the hook's process group; wait for init to reap it.
    await until(() => !alive(sleepPid!), `the hook's orphaned sleep (pid ${sleepPid}) to be gone`);
  });

  it('does not time out a hook that finishes in time', async () => {
    const dir = tempDir();
    await expect(runHook({ path: script(dir, 'quick.sh', 'exit 0'), timeout: 5 }, state)).resolves.toBeUndefined();
  });

  it('returns promptly when a hook leaves a child holding its stdout', async () => {
    const dir = tempDir();
    const pidFile = join(dir, 'pid');
    const hook = script(dir, 'daemon.sh', `sleep 30 & echo $! > ${pidFile}; exit 0`);
    const started = Date.now();
    await runHook({ path: hook }, state);
    expect(Date.now() - started).toBeLessThan(10_000);
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
  });

  it('bounds the captured output', async () => {
    const dir = tempDir();
    const hook = script(dir, 'loud.sh', 'head -c 200000 /dev/zero | tr "\\0" x; exit 1');
    const err = (await runHook({ path: hook }, state).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain(`(truncated at ${HOOK_OUTPUT_LIMIT} bytes)`);
    expect(err.message.length).toBeLessThan(HOOK_OUTPUT_LIMIT + 1000);
  });

  it('does not fail when the hook ignores its stdin', async () => {
    const dir = tempDir();
    await expect(runHook({ path: script(dir, 'noread.sh', 'exec 0<&-; exit 0') }, state)).resolves.toBeUndefined();
  });

  it('says why a hook cannot start', async () => {
    const dir = tempDir();
    await expect(runHook({ path: join(dir, 'missing') }, state)).rejects.toMatchObject({
      code: 'ENOENT',
      path: join(dir, 'missing'),
      message: expect.stringContaining(`cannot start hook ${join(dir, 'missing')}`),
    });
    const notExec = join(dir, 'plain');
    writeFileSync(notExec, 'x');
    await expect(runHook({ path: notExec }, state)).rejects.toMatchObject({ code: 'EACCES' });
  });

  it('rejects invalid hooks before running anything', async () => {
    await expect(runHook({ path: 'relative' }, state)).rejects.toThrow(/hook\.path must be an absolute path/);
    await expect(runHook({ path: '/bin/true', timeout: -1 }, state)).rejects.toThrow(/greater than 0/);
    await expect(runHook({ path: '/bin/true', env: ['NOEQ'] }, state)).rejects.toThrow(/NAME=value/);
  });
});

describe('preStartHooks, postStartHooks, postStopHooks', () => {
  it('run in order with the state of each stage, and stop at the first failure', async () => {
    const dir = tempDir();
    const log = join(dir, 'log');
    const rec = (name: string) => script(dir, `${name}.sh`, `printf '%s ' ${name} >> ${log}; cat >> ${log}; echo >> ${log}`);
    const fail = script(dir, 'fail.sh', 'echo nope >&2; exit 1');
    const spec: Spec = {
      ...minimalSpec(),
      annotations: { a: 'b' },
      hooks: {
        prestart: [{ path: rec('pre1') }, { path: rec('pre2') }],
        poststart: [{ path: rec('post1') }, { path: fail }, { path: rec('never') }],
        poststop: [{ path: rec('stop1') }],
      },
    };
    await preStartHooks(spec, 'c9', '/bundle', { pid: 77 });
    await expect(postStartHooks(spec, 'c9', '/bundle')).rejects.toThrow(/poststart hook #2 failed: hook .*fail\.sh failed: exit status 1: stdout: , stderr: nope/);
    await postStopHooks(spec, 'c9', '/bundle');
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    // 'never' (after the failing poststart hook) did not run: it is not in the log.
    expect(lines.map((l) => l.split(' ')[0])).toEqual(['pre1', 'pre2', 'post1', 'stop1']);
    const states = lines.map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)) as HookState);
    expect(states[0]).toEqual({ ociVersion: '1.0.2', id: 'c9', status: 'creating', pid: 77, bundle: '/bundle', annotations: { a: 'b' } });
    expect(states[2]!.status).toBe('running');
    expect(states[2]!.pid).toBe(process.pid);
    expect(states[3]!.status).toBe('stopped');
  });

  it('do nothing without hooks', async () => {
    const spec = minimalSpec();
    delete spec.hooks;
    await expect(preStartHooks(spec, 'c', '/b')).resolves.toBeUndefined();
    await expect(postStopHooks({ ...spec, hooks: {} }, 'c', '/b')).resolves.toBeUndefined();
  });
});
