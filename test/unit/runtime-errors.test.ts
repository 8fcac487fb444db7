/**
 * nodevisor-runtime's failures: each names what is wrong, goes to the --log file in the format
 * asked (runc's JSON lines, which the runc shim reads), and gives a non-zero exit status; and
 * nothing is left under --root by a command that failed. No sandbox is started here.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { main } from '../../src/runtime/main.js';
import { tempDir } from '../helpers/tmp.js';

let root: string;
let log: string;
let stdout: string;
let stderr: string;

beforeEach(() => {
  const dir = tempDir();
  root = join(dir, 'root');
  log = join(dir, 'log.json');
  stdout = '';
  stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
});

afterEach(() => {
  vi.restoreAllMocks();
});

function run(...args: string[]): Promise<number> {
  return main(['--root', root, '--log', log, '--log-format', 'json', ...args]);
}

/** The messages of the error lines in the log. */
function logged(): string[] {
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { level: string; msg: string; time: string })
    .map((l) => {
      expect(l.level).toBe('error');
      expect(Number.isNaN(Date.parse(l.time))).toBe(false);
      return l.msg;
    });
}

describe('nodevisor-runtime errors', () => {
  it.each([
    [['state', 'nope'], 'container nope does not exist (ENOENT)'],
    [['start', 'nope'], 'container nope does not exist (ENOENT)'],
    [['kill', 'nope', 'KILL'], 'container nope does not exist (ENOENT)'],
    [['delete', 'nope'], 'container nope does not exist (ENOENT)'],
    [['ps', '--format', 'json', 'nope'], 'container nope does not exist (ENOENT)'],
    [['kill', 'nope', 'SIGNOPE'], 'kill: unknown signal "SIGNOPE"'],
    [['pause', 'c'], 'pause is not supported by nodevisor-runtime'],
    [['resume', 'c'], 'resume is not supported by nodevisor-runtime'],
    [['state', '../x'], 'container id'],
  ])('%j fails with status 1, logged and on stderr: %s', async (args, message) => {
    expect(await run(...args)).toBe(1);
    expect(logged()).toEqual([expect.stringContaining(message)]);
    expect(stderr).toContain(message);
  });

  it('logs text lines with --log-format text, and only to stderr without --log', async () => {
    expect(await main(['--root', root, '--log', log, 'state', 'nope'])).toBe(1);
    expect(readFileSync(log, 'utf8')).toMatch(/^time="[^"]+" level=error msg="container nope does not exist \(ENOENT\)"\n$/);
    stderr = '';
    expect(await main(['--root', root, 'state', 'nope'])).toBe(1);
    expect(stderr).toContain('level=error msg="container nope does not exist (ENOENT)"');
  });

  it('exits 2 with the usage for a command line it cannot parse', async () => {
    expect(await run('create', '--bogus', 'x')).toBe(2);
    expect(stderr).toContain('create: unknown flag --bogus');
    expect(stderr).toContain('usage: nodevisor-runtime');
  });

  it('create names a bundle without config.json and a terminal without its console socket, and leaves nothing', async () => {
    const bundle = join(tempDir(), 'bundle');
    mkdirSync(bundle);
    expect(await run('create', '--bundle', bundle, 'c1')).toBe(1);
    expect(logged()[0]).toContain(join(bundle, 'config.json'));
    writeFileSync(
      join(bundle, 'config.json'),
      JSON.stringify({ ociVersion: '1.0.2', process: { terminal: true, user: { uid: 0, gid: 0 }, args: ['sh'], cwd: '/' }, root: { path: 'rootfs' }, linux: {} }),
    );
    expect(await run('create', '--bundle', bundle, 'c1')).toBe(1);
    expect(logged()[1]).toContain('process.terminal is set: give --console-socket, where the pty master is sent');
    writeFileSync(join(bundle, 'config.json'), readFileSync(join(bundle, 'config.json'), 'utf8').replace('"terminal":true', '"terminal":false'));
    expect(await run('create', '--bundle', bundle, '--console-socket', '/tmp/no.sock', 'c1')).toBe(1);
    expect(logged()[2]).toContain('--console-socket is given but process.terminal is not set in the bundle');
    expect(readdirSync(root)).toEqual([]);
  });

  it('delete --force of an unknown container succeeds (runc), and removes a directory without a state', async () => {
    mkdirSync(join(root, 'aborted'), { recursive: true });
    expect(await run('delete', '--force', 'aborted')).toBe(0);
    expect(await run('delete', '--force', 'never')).toBe(0);
    expect(readdirSync(root)).toEqual([]);
  });

  it('reports a damaged state file by its path', async () => {
    mkdirSync(join(root, 'c'), { recursive: true });
    writeFileSync(join(root, 'c', 'state.json'), '{');
    expect(await run('state', 'c')).toBe(1);
    expect(logged()[0]).toContain(`${join(root, 'c', 'state.json')} is damaged`);
  });

  it('answers list, features, --version and check-config', async () => {
    expect(await run('list')).toBe(0);
    expect(stdout).toBe('ID   PID   STATUS   BUNDLE   CREATED   OWNER\n');
    stdout = '';
    expect(await run('list', '--format', 'json')).toBe(0);
    expect(JSON.parse(stdout)).toEqual([]);
    stdout = '';
    expect(await run('features')).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ ociVersionMin: '1.0.0', hooks: ['prestart', 'poststart', 'poststop'] });
    stdout = '';
    expect(await main(['--version'])).toBe(0);
    expect(stdout).toMatch(/^nodevisor-runtime version \d+\.\d+\.\d+\nspec: 1\.0\.2\n$/);
    const conf = join(tempDir(), 'c.toml');
    writeFileSync(conf, '[runtime]\nisolation = "namespaces"\n');
    vi.stubEnv('NODEVISOR_CONF_FILE', conf);
    stdout = '';
    expect(await run('check-config')).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ path: conf, isolation: 'namespaces' });
    writeFileSync(conf, '[runtime]\nisolation = 3\n');
    expect(await run('check-config')).toBe(1);
    expect(logged()).toEqual([`${conf}: runtime.isolation must be a string, not 3 (ECONFIG)`]);
    vi.unstubAllEnvs();
  });
});
