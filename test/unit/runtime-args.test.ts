/** nodevisor-runtime's command line: runc's forms as go-runc (containerd's runc shim) writes them. */
import { constants as osConstants } from 'node:os';
import { describe, expect, it } from 'vitest';

import { DEFAULT_ROOT, parseCommandLine, parseSignal, usage, UsageError } from '../../src/runtime/args.js';

const signals = osConstants.signals as Record<string, number>;

describe('parseCommandLine', () => {
  it("reads the runc shim's create: global flags, then the command's, then the id", () => {
    const line = parseCommandLine([
      '--root', '/run/containerd/runc/default', '--log', '/b/log.json', '--log-format', 'json', '--systemd-cgroup',
      'create', '--bundle', '/b', '--pid-file', '/b/init.pid', '--no-pivot', '--no-new-keyring', 'ctr1',
    ]);
    expect(line.global).toEqual({ root: '/run/containerd/runc/default', log: '/b/log.json', logFormat: 'json', systemdCgroup: true, debug: false });
    expect(line.command).toBe('create');
    expect(line.flags).toEqual({ bundle: '/b', 'pid-file': '/b/init.pid', 'no-pivot': true, 'no-new-keyring': true });
    expect(line.positionals).toEqual(['ctr1']);
  });

  it('takes --flag=value, single-dash flags and aliases, and defaults', () => {
    const line = parseCommandLine(['-root=/r', 'create', '-b', '/bundle', '--console-socket=/s.sock', 'x']);
    expect(line.global.root).toBe('/r');
    expect(line.global.logFormat).toBe('text');
    expect(line.flags).toEqual({ bundle: '/bundle', 'console-socket': '/s.sock' });
    expect(parseCommandLine(['create', 'x']).flags.bundle).toBe('.');
    expect(parseCommandLine(['state', 'x']).global.root).toBe(DEFAULT_ROOT);
  });

  it('reads kill with a signal and --all, delete --force, ps --format json, exec as the shim calls it', () => {
    expect(parseCommandLine(['kill', '--all', 'c', '9'])).toMatchObject({ command: 'kill', flags: { all: true }, positionals: ['c', '9'] });
    expect(parseCommandLine(['delete', '--force', 'c'])).toMatchObject({ command: 'delete', flags: { force: true }, positionals: ['c'] });
    expect(parseCommandLine(['ps', '--format', 'json', 'c'])).toMatchObject({ command: 'ps', flags: { format: 'json' } });
    const exec = parseCommandLine(['exec', '--process', '/tmp/p.json', '--detach', '--pid-file', '/b/e.pid', '--preserve-fds', '0', 'c']);
    expect(exec.flags).toEqual({ process: '/tmp/p.json', detach: true, 'pid-file': '/b/e.pid' });
    // runc's other form: the command after the id, its flags its own.
    expect(parseCommandLine(['exec', 'c', 'sh', '-c', 'echo hi']).positionals).toEqual(['c', 'sh', '-c', 'echo hi']);
  });

  it('answers --version and --help without a command', () => {
    expect(parseCommandLine(['--version'])).toMatchObject({ command: undefined, version: true });
    expect(parseCommandLine(['-h'])).toMatchObject({ command: undefined, help: true });
    expect(parseCommandLine(['kill', '--help'])).toMatchObject({ command: 'kill', help: true });
    expect(usage('kill')).toContain('kill [--all] <container-id> [SIGNAL]');
  });

  it.each([
    [[], 'no command given'],
    [['frobnicate', 'x'], 'unknown command "frobnicate"'],
    [['create', '--bogus', 'x'], 'create: unknown flag --bogus'],
    [['--bogus', 'state', 'x'], 'nodevisor-runtime: unknown flag --bogus'],
    [['create', '--bundle'], 'create: flag --bundle needs a value'],
    [['start'], 'start: a container id is required'],
    [['start', 'a', 'b'], 'start: unexpected argument "b"'],
    [['--log-format', 'xml', 'state', 'x'], '--log-format must be text or json, not "xml"'],
    [['--root', '', 'state', 'x'], '--root must not be empty'],
    [['delete', '--force=maybe', 'x'], 'delete: flag --force is true or false, not "maybe"'],
    [['exec', 'c'], 'exec: give --process PROCESS.json or the command after the container id'],
    [['ps', '--format', 'xml', 'c'], 'ps: --format must be json or table, not "xml"'],
  ])('rejects %j: %s', (args, message) => {
    let caught: unknown;
    try {
      parseCommandLine(args);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UsageError);
    expect((caught as Error).message).toContain(message);
  });
});

describe('parseSignal', () => {
  it('takes numbers, names with and without SIG, and defaults to SIGTERM', () => {
    expect(parseSignal(undefined, signals)).toBe(signals.SIGTERM);
    expect(parseSignal('9', signals)).toBe(9);
    expect(parseSignal('KILL', signals)).toBe(signals.SIGKILL);
    expect(parseSignal('sigusr1', signals)).toBe(signals.SIGUSR1);
  });

  it('rejects unknown names and numbers out of range', () => {
    expect(() => parseSignal('SIGNOPE', signals)).toThrow('kill: unknown signal "SIGNOPE"');
    expect(() => parseSignal('0', signals)).toThrow('signal number must be 1 to 64, not 0');
    expect(() => parseSignal('65', signals)).toThrow('signal number must be 1 to 64, not 65');
  });
});
