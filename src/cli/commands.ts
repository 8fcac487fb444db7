/** The table of subcommands of the `nodevisor` CLI. */
export interface Command {
  run(args: string[]): Promise<number>;
}

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

export const commands: CommandEntry[] = [
  {
    name: 'info',
    summary: 'show the addon build, and whether this machine can run VMs (KVM, PVM) and the tests (root)',
    load: async () => (await import('./commands/info.js')).default,
  },
  {
    name: 'demo',
    summary: 'boot the bundled probe guest in this process, show its console and how long the start took',
    load: async () => (await import('./commands/demo.js')).default,
  },
  {
    name: 'guest',
    summary: "guest build: fetch Debian's cloud kernel and write an initramfs with the agent as /init",
    load: async () => (await import('./commands/guest.js')).default,
  },
  {
    name: 'run',
    summary: "run an OCI bundle's container in a new sandbox (--isolation vm|namespaces), stream its stdio, exit with its status",
    load: async () => (await import('./commands/run.js')).default,
  },
];

export function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `usage: nodevisor <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}
