#!/usr/bin/env node
/**
 * `nodevisor-runtime`: an OCI runtime with runc's command line, so containerd's runc shim
 * (`BinaryName`), Docker (`--add-runtime`) and Kubernetes (a RuntimeClass over containerd) can
 * run containers in nodevisor sandboxes. See docs/runtime.md.
 *
 * Errors go to the --log file in the --log-format asked (runc's shape: the shim reads them
 * from there) and to stderr, and the exit status is 1 (2 for a command line that cannot be
 * parsed).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

import { errorCode } from '../errors.js';
import { parseCommandLine, usage, UsageError, type ParsedCommandLine } from './args.js';
import * as cmd from './commands.js';
import { loadConfig } from './config.js';
import { openLog } from './log.js';

function packageVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      // the other layout (dist/ or the source tree)
    }
  }
  return 'unknown';
}

const out: cmd.Output = { write: (text) => process.stdout.write(text) };

async function run(line: ParsedCommandLine): Promise<number> {
  const { global, command, flags, positionals } = line;
  const id = positionals[0]!;
  switch (command) {
    case 'create':
      await cmd.create(global, id, flags);
      return 0;
    case 'start':
      await cmd.start(global, id);
      return 0;
    case 'state':
      await cmd.state(global, id, out);
      return 0;
    case 'kill':
      await cmd.kill(global, id, positionals[1], flags.all === true);
      return 0;
    case 'delete':
      await cmd.remove(global, id, flags.force === true);
      return 0;
    case 'exec':
      return cmd.exec(global, id, flags, positionals.slice(1));
    case 'ps':
      await cmd.ps(global, id, typeof flags.format === 'string' ? flags.format : 'table', out);
      return 0;
    case 'pause':
    case 'resume':
      return cmd.notSupported(command);
    case 'list':
      await cmd.list(global, typeof flags.format === 'string' ? flags.format : 'table', flags.quiet === true, out);
      return 0;
    case 'features':
      out.write(`${JSON.stringify(cmd.features(), null, 2)}\n`);
      return 0;
    case 'check-config':
      out.write(`${JSON.stringify(await loadConfig(), null, 2)}\n`);
      return 0;
    case 'version':
    case undefined:
      out.write(`nodevisor-runtime version ${packageVersion()}\nspec: ${cmd.OCI_VERSION}\n`);
      return 0;
  }
}

/** Runs a command line; resolves to the exit status. Errors are logged where the caller asked. */
export async function main(argv: string[]): Promise<number> {
  let line: ParsedCommandLine;
  try {
    line = parseCommandLine(argv);
  } catch (err) {
    // The log flags may be what failed to parse: report on stderr too.
    process.stderr.write(`nodevisor-runtime: ${(err as Error).message}\n\n${usage()}`);
    return 2;
  }
  const log = openLog(line.global.log, line.global.logFormat, line.global.debug);
  if (line.help) {
    out.write(usage(line.command));
    return 0;
  }
  if (line.version && !line.command) line.command = 'version';
  try {
    return await run(line);
  } catch (err) {
    const code = errorCode(err);
    const message = err instanceof Error ? err.message : String(err);
    const text = err instanceof UsageError || !code ? message : `${message} (${code})`;
    log.error(text);
    // As runc: on stderr too (go-runc puts a failed command's output in its error, and the
    // shim tells "container not running" from other kill failures by it).
    if (line.global.log) process.stderr.write(`${text}\n`);
    return 1;
  }
}

/** Whether this module is the program (run directly, or through the bin symlink npm makes). */
function isProgram(): boolean {
  if (!process.argv[1]) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isProgram()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`nodevisor-runtime: ${String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
