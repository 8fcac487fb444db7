/**
 * `nodevisor run --bundle DIR [--isolation vm|namespaces] [--rootfs-device PATH] ID`: runs an
 * OCI bundle's container in a new sandbox, streams its stdio, exits with its status (128 + the
 * signal when a signal killed it) and tears everything down, also on Ctrl-C (SIGINT, SIGTERM).
 *
 * Without --rootfs-device the rootfs is the bundle's `root.path` directory (host-mounted, so
 * isolation 'namespaces' only); with it, a block device or an ext4 image (--rootfs-type).
 */
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';

import type { RuntimeConfig } from '../../config/types.js';
import { handleFactory } from '../../factory/index.js';
import { parseConfigJson } from '../../oci/parse.js';
import type { RootFs } from '../../rootfs/rootfs.js';
import { createSandbox } from '../../sandbox/create.js';
import type { Sandbox } from '../../sandbox/sandbox.js';
import { ISOLATIONS, type Isolation } from '../../sandbox/types.js';
import type { Command } from '../commands.js';

const USAGE = `usage: nodevisor run --bundle DIR [--isolation vm|namespaces] [--rootfs-device PATH] [--rootfs-type TYPE]
                     [--kernel PATH] [--initrd PATH] [--memory MiB] ID

  --bundle DIR         the OCI bundle (DIR/config.json)
  --isolation          vm (default: a KVM VM with the guest agent) or namespaces (the agent in host
                       namespaces; isolates like runc, not like a VM)
  --rootfs-device PATH a block device or filesystem image holding the rootfs (default: the
                       bundle's root.path directory, namespaces only)
  --rootfs-type TYPE   its filesystem type (default ext4)
  --kernel, --initrd   the guest kernel and initramfs for --isolation vm (nodevisor guest build)
  --memory MiB         guest memory for --isolation vm
`;

/** How long the output may trail the exit status (the agent sends it first; this is a bound). */
const OUTPUT_DRAIN_MS = 2000;

function fail(message: string): number {
  process.stderr.write(`nodevisor run: ${message}\n\n${USAGE}`);
  return 2;
}

function ended(stream: Readable): Promise<void> {
  if (stream.readableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, OUTPUT_DRAIN_MS);
    stream.once('end', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const run: Command = {
  async run(args) {
    let parsed;
    try {
      parsed = parseArgs({
        args,
        allowPositionals: true,
        options: {
          bundle: { type: 'string' },
          isolation: { type: 'string', default: 'vm' },
          'rootfs-device': { type: 'string' },
          'rootfs-type': { type: 'string', default: 'ext4' },
          kernel: { type: 'string' },
          initrd: { type: 'string' },
          memory: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      });
    } catch (err) {
      return fail((err as Error).message);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (positionals.length !== 1) return fail('give exactly one container ID');
    const containerId = positionals[0]!;
    if (!values.bundle) return fail('--bundle is required');
    const isolation = values.isolation as Isolation;
    if (!ISOLATIONS.includes(isolation)) return fail(`--isolation must be one of ${ISOLATIONS.join(', ')}`);
    if (isolation === 'vm' && !values.kernel) return fail('--isolation vm needs --kernel (and usually --initrd): see `nodevisor guest build`');
    const memory = values.memory === undefined ? undefined : Number(values.memory);
    if (memory !== undefined && !(Number.isInteger(memory) && memory > 0)) return fail('--memory must be a positive integer (MiB)');

    const spec = await parseConfigJson(values.bundle);
    const rootFs: RootFs = values['rootfs-device']
      ? { source: values['rootfs-device'], type: values['rootfs-type'], options: spec.root.readonly ? ['ro'] : [], mounted: false }
      : { mounted: true };
    const runtimeConfig: RuntimeConfig = {
      hypervisorConfig: {
        kernelPath: values.kernel ?? '',
        ...(values.initrd ? { initrdPath: values.initrd } : {}),
        ...(memory ? { memorySize: memory } : {}),
        kernelParams: [],
      },
      factoryConfig: { template: false, vmCacheNumber: 0, vmCacheEndpoint: '' },
      trace: false,
      disableNewNetNs: false,
    };

    let sandbox: Sandbox | undefined;
    let interrupted: NodeJS.Signals | undefined;
    let wake: (() => void) | undefined;
    const interruption = new Promise<void>((resolve) => (wake = resolve));
    const onSignal = (signal: NodeJS.Signals) => {
      interrupted ??= signal;
      wake?.();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      // Kata's CLI create: HandleFactory first (a no-op without template or cache configured).
      if (isolation === 'vm') await handleFactory(undefined, runtimeConfig);
      const created = createSandbox({ spec, runtimeConfig, rootFs, containerId, bundlePath: values.bundle, isolation });
      // A Ctrl-C during creation waits for it (its rollback, or the sandbox to delete).
      sandbox = (await created).sandbox;
      if (interrupted) return 128 + (interrupted === 'SIGINT' ? 2 : 15);
      const stdio = sandbox.stdio(containerId);
      stdio.stdout.pipe(process.stdout, { end: false });
      stdio.stderr.pipe(process.stderr, { end: false });
      if (!process.stdin.isTTY) process.stdin.pipe(stdio.stdin);
      else stdio.stdin.end();
      await sandbox.startContainer(containerId);
      const status = await Promise.race([sandbox.wait(containerId), interruption.then(() => undefined)]);
      if (!status) return 128 + (interrupted === 'SIGINT' ? 2 : 15);
      await Promise.all([ended(stdio.stdout), ended(stdio.stderr)]);
      return status.exitCode ?? 128 + (status.signal ?? 0);
    } finally {
      process.stdin.unpipe();
      process.stdin.destroy();
      await sandbox?.delete();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};

export default run;
