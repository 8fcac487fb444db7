/**
 * runc's command line, as containerd's runc shim (go-runc), Docker and Kubernetes (through
 * containerd) call it: `nodevisor-runtime [global flags] <command> [flags] <id> [args]`.
 *
 * Like runc's CLI library, a flag is `--name`, `-name`, `--name=value` or `--name value`, global
 * flags come before the command, the command's own flags before its positionals (go-runc always
 * puts them there). Unknown flags are errors, so a caller's mistake is named, except the runc
 * flags listed as ignored: accepted because callers pass them, and meaningless for nodevisor.
 *
 * Pure: no I/O, so the unit tests exercise every branch.
 */

export type LogFormat = 'text' | 'json';

export interface GlobalOptions {
  /** State directory (runc's --root). */
  root: string;
  /** File that errors are appended to ('' = stderr). */
  log: string;
  logFormat: LogFormat;
  systemdCgroup: boolean;
  debug: boolean;
}

export const DEFAULT_ROOT = '/run/nodevisor/runtime';

export const COMMANDS = [
  'create',
  'start',
  'state',
  'kill',
  'delete',
  'exec',
  'ps',
  'pause',
  'resume',
  'list',
  'features',
  'check-config',
  'version',
] as const;
export type CommandName = (typeof COMMANDS)[number];

/** A command's flags: string flags take a value, booleans do not. */
interface FlagTable {
  strings: readonly string[];
  booleans: readonly string[];
  /** Accepted and ignored (runc flags without a meaning here). */
  ignoredStrings?: readonly string[];
  ignoredBooleans?: readonly string[];
  /** Single-letter aliases. */
  aliases?: Readonly<Record<string, string>>;
  /** How many positionals: [min, max]. */
  positionals: readonly [number, number];
  usage: string;
}

const GLOBAL: FlagTable = {
  strings: ['root', 'log', 'log-format', 'criu', 'rootless'],
  booleans: ['systemd-cgroup', 'debug', 'help', 'version'],
  aliases: { h: 'help', v: 'version' },
  positionals: [0, 0],
  usage: '',
};

const TABLES: Record<CommandName, FlagTable> = {
  create: {
    strings: ['bundle', 'pid-file', 'console-socket'],
    booleans: ['no-pivot', 'no-new-keyring'],
    ignoredStrings: ['preserve-fds', 'pidfd-socket'],
    aliases: { b: 'bundle' },
    positionals: [1, 1],
    usage: 'create --bundle DIR [--pid-file FILE] [--console-socket SOCKET] [--no-pivot] <container-id>',
  },
  start: { strings: [], booleans: [], positionals: [1, 1], usage: 'start <container-id>' },
  state: { strings: [], booleans: [], positionals: [1, 1], usage: 'state <container-id>' },
  kill: {
    strings: [],
    booleans: ['all'],
    aliases: { a: 'all' },
    positionals: [1, 2],
    usage: 'kill [--all] <container-id> [SIGNAL]',
  },
  delete: { strings: [], booleans: ['force'], aliases: { f: 'force' }, positionals: [1, 1], usage: 'delete [--force] <container-id>' },
  exec: {
    strings: ['process', 'pid-file', 'console-socket', 'cwd', 'user'],
    booleans: ['detach', 'tty', 'no-new-privs'],
    ignoredStrings: ['preserve-fds', 'process-label', 'apparmor', 'cgroup', 'pidfd-socket'],
    ignoredBooleans: ['ignore-paused'],
    aliases: { p: 'process', d: 'detach', t: 'tty', u: 'user' },
    positionals: [1, Infinity],
    usage: 'exec --process PROCESS.json [--pid-file FILE] [--detach] [--console-socket SOCKET] <container-id>',
  },
  ps: { strings: ['format'], booleans: [], aliases: { f: 'format' }, positionals: [1, Infinity], usage: 'ps --format json <container-id>' },
  pause: { strings: [], booleans: [], positionals: [1, 1], usage: 'pause <container-id>' },
  resume: { strings: [], booleans: [], positionals: [1, 1], usage: 'resume <container-id>' },
  list: { strings: ['format'], booleans: ['quiet'], aliases: { f: 'format', q: 'quiet' }, positionals: [0, 0], usage: 'list [--format table|json] [--quiet]' },
  features: { strings: [], booleans: [], positionals: [0, 0], usage: 'features' },
  'check-config': { strings: [], booleans: [], positionals: [0, 0], usage: 'check-config' },
  version: { strings: [], booleans: [], positionals: [0, 0], usage: 'version' },
};

/** A command line that cannot be run: the message names what is wrong (the command exits with status 2). */
export class UsageError extends Error {
  readonly code = 'EUSAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ParsedCommandLine {
  global: GlobalOptions;
  /** undefined for `--help` / `--version` without a command. */
  command: CommandName | undefined;
  help: boolean;
  version: boolean;
  /** The command's flags by long name: strings, or true for booleans. */
  flags: Record<string, string | boolean>;
  positionals: string[];
}

interface Scan {
  flags: Record<string, string | boolean>;
  positionals: string[];
  /** Index of the first argument not consumed (the command, for the global scan). */
  next: number;
}

/**
 * Reads flags from `args[start]` on, until the first positional when `stopAtPositional`
 * (the global scan), else to the end (flags after the first positional are positionals,
 * as for runc: `exec ID sh -c ...`).
 */
function scan(args: readonly string[], start: number, table: FlagTable, where: string, stopAtPositional: boolean): Scan {
  const flags: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  let i = start;
  while (i < args.length) {
    const arg = args[i]!;
    if (positionals.length > 0 || arg === '-' || !arg.startsWith('-')) {
      if (stopAtPositional) break;
      positionals.push(arg);
      i++;
      continue;
    }
    if (arg === '--') {
      if (stopAtPositional) {
        i++;
        break;
      }
      positionals.push(...args.slice(i + 1));
      i = args.length;
      break;
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const rawName = eq < 0 ? body : body.slice(0, eq);
    const name = table.aliases?.[rawName] ?? rawName;
    const inline = eq < 0 ? undefined : body.slice(eq + 1);
    i++;
    const isString = table.strings.includes(name) || table.ignoredStrings?.includes(name);
    const isBoolean = table.booleans.includes(name) || table.ignoredBooleans?.includes(name);
    if (isString) {
      let value = inline;
      if (value === undefined) {
        if (i >= args.length) throw new UsageError(`${where}: flag --${name} needs a value`);
        value = args[i++]!;
      }
      if (!table.ignoredStrings?.includes(name)) flags[name] = value;
    } else if (isBoolean) {
      let value = true;
      if (inline !== undefined) {
        if (inline !== 'true' && inline !== 'false') throw new UsageError(`${where}: flag --${name} is true or false, not ${JSON.stringify(inline)}`);
        value = inline === 'true';
      }
      if (!table.ignoredBooleans?.includes(name)) flags[name] = value;
    } else {
      throw new UsageError(`${where}: unknown flag ${arg.split('=')[0]}`);
    }
  }
  return { flags, positionals, next: i };
}

function str(flags: Record<string, string | boolean>, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

/** Parses a whole command line (without `node` and the script). Throws UsageError. */
export function parseCommandLine(args: readonly string[]): ParsedCommandLine {
  const g = scan(args, 0, GLOBAL, 'nodevisor-runtime', true);
  const logFormat = str(g.flags, 'log-format') ?? 'text';
  if (logFormat !== 'text' && logFormat !== 'json') throw new UsageError(`--log-format must be text or json, not ${JSON.stringify(logFormat)}`);
  const root = str(g.flags, 'root') ?? DEFAULT_ROOT;
  if (root === '') throw new UsageError('--root must not be empty');
  const global: GlobalOptions = {
    root,
    log: str(g.flags, 'log') ?? '',
    logFormat,
    systemdCgroup: g.flags['systemd-cgroup'] === true,
    debug: g.flags.debug === true,
  };
  const name = args[g.next];
  const help = g.flags.help === true;
  const version = g.flags.version === true;
  if (name === undefined) {
    if (help || version) return { global, command: undefined, help, version, flags: {}, positionals: [] };
    throw new UsageError('no command given');
  }
  if (!(COMMANDS as readonly string[]).includes(name)) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  const command = name as CommandName;
  const table = TABLES[command];
  const c = scan(args, g.next + 1, { ...table, booleans: [...table.booleans, 'help'], aliases: { ...table.aliases, h: 'help' } }, command, false);
  if (c.flags.help === true) return { global, command, help: true, version, flags: c.flags, positionals: c.positionals };
  const [min, max] = table.positionals;
  if (c.positionals.length < min) {
    throw new UsageError(`${command}: ${min === 1 ? 'a container id is' : `${min} arguments are`} required (usage: ${table.usage})`);
  }
  if (c.positionals.length > max) {
    throw new UsageError(`${command}: unexpected argument ${JSON.stringify(c.positionals[max])} (usage: ${table.usage})`);
  }
  if (command === 'create' && !c.flags.bundle) c.flags.bundle = '.';
  if (command === 'exec' && !c.flags.process && c.positionals.length < 2) {
    throw new UsageError('exec: give --process PROCESS.json or the command after the container id');
  }
  if (command === 'ps' && c.flags.format !== undefined && c.flags.format !== 'json' && c.flags.format !== 'table') {
    throw new UsageError(`ps: --format must be json or table, not ${JSON.stringify(c.flags.format)}`);
  }
  if (command === 'list' && c.flags.format !== undefined && c.flags.format !== 'json' && c.flags.format !== 'table') {
    throw new UsageError(`list: --format must be json or table, not ${JSON.stringify(c.flags.format)}`);
  }
  return { global, command, help: false, version, flags: c.flags, positionals: c.positionals };
}

/** The usage text of one command, or of all. */
export function usage(command?: CommandName): string {
  if (command) return `usage: nodevisor-runtime [global flags] ${TABLES[command].usage}\n`;
  const lines = COMMANDS.map((c) => `  ${TABLES[c].usage}`);
  return (
    'usage: nodevisor-runtime [--root DIR] [--log FILE] [--log-format text|json] [--systemd-cgroup] <command> ...\n\n' +
    'An OCI runtime with runc\'s command line that runs containers in nodevisor sandboxes.\n\ncommands:\n' +
    `${lines.join('\n')}\n`
  );
}

/**
 * A signal as `kill` takes it: a number, `KILL`, or `SIGKILL` (runc's forms). Default SIGTERM.
 * Returns the signal number.
 */
export function parseSignal(text: string | undefined, signals: Readonly<Record<string, number>>): number {
  if (text === undefined) return signals.SIGTERM!;
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n < 1 || n > 64) throw new UsageError(`kill: signal number must be 1 to 64, not ${text}`);
    return n;
  }
  const name = text.toUpperCase().startsWith('SIG') ? text.toUpperCase() : `SIG${text.toUpperCase()}`;
  const n = signals[name];
  if (n === undefined) throw new UsageError(`kill: unknown signal ${JSON.stringify(text)}`);
  return n;
}
