/**
 * `nodevisor guest build`: fetch Debian's cloud kernel and write an initramfs with the agent as
 * /init (src/guest/image). Progress goes to stderr; the result (paths, versions) to stdout, as
 * JSON with `--json`.
 */
import { parseArgs } from 'node:util';

import { buildGuestImage } from '../../guest/image/build.js';
import type { Command } from '../commands.js';

const USAGE = `usage: nodevisor guest build [options]

Fetches Debian's cloud kernel package (apt-get download, cached), and writes a deterministic
initramfs holding the nodevisor agent as /init and the virtio/ext4 modules the kernel needs.

options:
  --package NAME     Debian kernel package (default linux-image-cloud-amd64)
  --kernel PATH      use this kernel image instead of Debian's package (with --modules)
  --modules DIR      the lib/modules/<version> directory that belongs to --kernel
  --module NAME      also include this module and its dependencies (repeatable)
  --agent PATH       agent binary for /init (default: the one npm ci built)
  --cache DIR        cache directory (default $XDG_CACHE_HOME/nodevisor or ~/.cache/nodevisor)
  --json             print the result as JSON
`;

const guest: Command = {
  async run(args) {
    const [sub, ...rest] = args;
    if (sub === '--help' || sub === '-h') {
      process.stdout.write(USAGE); // asked for: to stdout, exit 0
      return 0;
    }
    if (sub !== 'build') {
      process.stderr.write(sub ? `nodevisor guest: unknown subcommand "${sub}"\n\n${USAGE}` : USAGE);
      return 2;
    }
    const { values } = parseArgs({
      args: rest,
      options: {
        package: { type: 'string' },
        kernel: { type: 'string' },
        modules: { type: 'string' },
        module: { type: 'string', multiple: true },
        agent: { type: 'string' },
        cache: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    const image = await buildGuestImage({
      ...(values.package !== undefined ? { package: values.package } : {}),
      ...(values.kernel !== undefined ? { kernel: values.kernel } : {}),
      ...(values.modules !== undefined ? { modules: values.modules } : {}),
      ...(values.agent !== undefined ? { agent: values.agent } : {}),
      ...(values.cache !== undefined ? { cacheDir: values.cache } : {}),
      extraModules: values.module ?? [],
      progress: (line) => process.stderr.write(`nodevisor guest build: ${line}\n`),
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(image, null, 2)}\n`);
    } else {
      process.stdout.write(
        [
          `kernel  ${image.kernel}`,
          ...(image.vmlinux ? [`vmlinux ${image.vmlinux} (ELF, PVH entry)`] : []),
          `initrd  ${image.initrd}`,
          `version ${image.kernelVersion}${image.package ? ` (${image.package.name} ${image.package.version})` : ''}`,
          `modules ${image.modules.join(' ')}${image.builtin.length ? ` (built in: ${image.builtin.join(' ')})` : ''}`,
          '',
        ].join('\n'),
      );
    }
    return 0;
  },
};

export default guest;
