#!/usr/bin/env node
/**
 * The `nodevisor` command. Each subcommand lives in its own module under src/cli/commands/
 * and is loaded only when asked for, so `nodevisor info` works where KVM does not.
 */
import { commands, usage } from './commands.js';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 1;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`nodevisor: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return (await command.load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = err as { message?: string; code?: string };
    process.stderr.write(`nodevisor: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}\n`);
    process.exitCode = 1;
  },
);
