/**
 * The template factory (Kata B32, B33): one VM is booted until its agent answers, paused and
 * snapshotted into a state directory on a tmpfs, then stopped; every VM after that is a
 * copy-on-write restore of that snapshot (memory mapped MAP_PRIVATE from `<state>/memory`),
 * returned paused. `template.json` next to the snapshot records what the template is.
 *
 * Differences from Kata, and why:
 * - A failure to make the template is returned as an error (Kata from `25d21060` on); the
 *   baseline silently fell back to a direct factory.
 * - No empty `memory` file is made before the boot and no 2 s wait for the agent's listener:
 *   the VMM writes `memory` at snapshot time, and the agent channel is in this process.
 * - `fetch` also reads `template.json` and refuses a template made from another VM config
 *   (Kata would have cloned it anyway, with the wrong kernel or memory).
 * - Once a clone is handed over (`prepareNext`), the next clone's restore is prepared in the
 *   background (`Vm.prepareRestore`: the VM assembled from the snapshot, its threads parked),
 *   so a clone pays only for its timers, its first request and the resume; `close` releases
 *   it first.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';

import { errorCode, invalid, NodevisorError, wrapError } from '../errors.js';
import { logger } from '../log/logger.js';
import { stopQuietly, type FactoryBase } from './base.js';
import { checkTemplateImage } from './check-config.js';
import type { FactoryVm, GuestKind, Hypervisor, StateFs, TemplateInfo } from './hypervisor.js';
import { TEMPLATE_TMPFS_EXTRA_MIB } from './tmpfs.js';
import { checkFactoryVmConfig, vmConfigMismatch, type CheckedFactoryVmConfig } from './vm-config.js';

/** Kata's `/run/vc/vm/template`, for nodevisor. */
export const DEFAULT_TEMPLATE_PATH = '/run/nodevisor/factory/template';
export const TEMPLATE_INFO_FILE = 'template.json';
/** The files `Vm.snapshot` writes, in the order B33 looks for them. */
export const SNAPSHOT_FILES = ['memory', 'state'] as const;

/** The state path is removed recursively on close: only a plain absolute path below / is taken. */
export function checkStatePath(path: unknown): string {
  if (typeof path !== 'string' || !isAbsolute(path)) {
    throw invalid(`statePath must be an absolute directory path, got ${JSON.stringify(path)}`);
  }
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') : path;
  if (trimmed === '/' || normalize(trimmed) !== trimmed || path.includes('\0')) {
    throw invalid(`statePath must be a normal absolute path below /, without . or .. components, got ${JSON.stringify(path)}`);
  }
  return trimmed;
}

export class TemplateFactory<V extends FactoryVm> implements FactoryBase<V> {
  private constructor(
    private readonly hypervisor: Hypervisor<V>,
    private readonly stateFs: StateFs,
    private readonly statePath: string,
    private readonly info: TemplateInfo,
  ) {}

  /** B32: makes the template on a fresh tmpfs. Nothing is left mounted when it fails. */
  static async create<V extends FactoryVm>(
    hypervisor: Hypervisor<V>,
    stateFs: StateFs,
    config: CheckedFactoryVmConfig,
    statePath: string,
  ): Promise<TemplateFactory<V>> {
    const log = logger('factory');
    checkTemplateImage(config.hypervisorConfig);
    const sizeMiB = config.hypervisorConfig.memorySize + TEMPLATE_TMPFS_EXTRA_MIB;
    try {
      // prepare() undoes its own half-done work; removing here could unmount someone else's.
      await stateFs.prepare(statePath, sizeMiB);
    } catch (err) {
      throw wrapError(`cannot prepare the VM template at ${statePath}`, err);
    }
    try {
      const info = await makeTemplateVm(hypervisor, config, statePath);
      log.info({ statePath, guest: info.guest, memoryMiB: config.hypervisorConfig.memorySize }, 'vm template created');
      return new TemplateFactory(hypervisor, stateFs, statePath, info);
    } catch (err) {
      await stateFs.remove(statePath);
      throw wrapError(`cannot make the VM template at ${statePath}`, err);
    }
  }

  /** B33: finds a template another factory made at `statePath`. */
  static async fetch<V extends FactoryVm>(
    hypervisor: Hypervisor<V>,
    stateFs: StateFs,
    config: CheckedFactoryVmConfig,
    statePath: string,
  ): Promise<TemplateFactory<V>> {
    for (const name of SNAPSHOT_FILES) {
      const file = join(statePath, name);
      try {
        await stat(file);
      } catch (err) {
        // Kata returns the stat error unchanged: its message names the missing file.
        throw new NodevisorError((err as Error).message, { code: errorCode(err) ?? 'ENOENT', path: file, syscall: 'stat', cause: err });
      }
    }
    const info = await readTemplateInfo(statePath);
    const h = config.hypervisorConfig;
    const t = info.config.hypervisorConfig;
    const mismatch =
      h.memorySize !== t.memorySize || h.numVCPUs !== t.numVCPUs
        ? `it has ${t.memorySize} MiB and ${t.numVCPUs} vCPUs, ${h.memorySize} MiB and ${h.numVCPUs} vCPUs are configured`
        : vmConfigMismatch(config, info.config);
    if (mismatch) {
      throw new NodevisorError(`the VM template at ${statePath} was made from another VM config: ${mismatch}`, {
        code: 'EINVAL',
        path: statePath,
      });
    }
    return new TemplateFactory(hypervisor, stateFs, statePath, info);
  }

  /** Kata: the original config, not the template-flagged copy. */
  config(): CheckedFactoryVmConfig {
    return this.info.config;
  }

  /** A paused copy-on-write clone of the template. */
  getBaseVm(_config: CheckedFactoryVmConfig): Promise<V> {
    return this.hypervisor.restore(this.statePath, this.info);
  }

  /** A clone restored running: its guest starts while the host sets up its side. */
  getRunningVm(_config: CheckedFactoryVmConfig): Promise<V> {
    return this.hypervisor.restore(this.statePath, this.info, { running: true });
  }

  /** The next clone's restore is prepared (the VM assembled from the snapshot, its threads parked). */
  prepareNext(): void {
    this.hypervisor.prepareRestore(this.statePath);
  }

  /**
   * Kata's `close()`: unmount and remove the state path; errors are logged, not returned. The
   * restore prepared for the next clone holds the snapshot's files: it is released first.
   */
  async close(): Promise<void> {
    await this.hypervisor.forget(this.statePath).catch((err: unknown) => {
      logger('factory').warn({ err, statePath: this.statePath }, 'cannot release the restore prepared from the template');
    });
    await this.stateFs.remove(this.statePath);
  }
}

/** Boots the template VM, snapshots it paused, always stops it. */
async function makeTemplateVm<V extends FactoryVm>(
  hypervisor: Hypervisor<V>,
  config: CheckedFactoryVmConfig,
  statePath: string,
): Promise<TemplateInfo> {
  const vm = await hypervisor.boot(config);
  try {
    const info: TemplateInfo = { config, guest: vm.guest };
    if (vm.guest === 'probe') info.generation = await vm.generation();
    await vm.pause();
    await vm.snapshot(statePath);
    await writeTemplateInfo(statePath, info);
    return info;
  } finally {
    await stopQuietly(vm, 'template made');
  }
}

async function writeTemplateInfo(statePath: string, info: TemplateInfo): Promise<void> {
  // Written last and renamed into place: a fetch never reads half a file, and a template
  // without template.json is not complete.
  const file = join(statePath, TEMPLATE_INFO_FILE);
  const staged = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(staged, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  await rename(staged, file);
}

const GUEST_KINDS: readonly GuestKind[] = ['agent', 'probe'];

async function readTemplateInfo(statePath: string): Promise<TemplateInfo> {
  const file = join(statePath, TEMPLATE_INFO_FILE);
  const bad = (why: string, cause?: unknown) =>
    new NodevisorError(`the VM template at ${statePath} is not usable: ${file} ${why}`, { code: 'EBADTEMPLATE', path: file, cause });
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw bad(errorCode(err) === 'ENOENT' ? 'is missing (the template was not finished)' : `cannot be read: ${(err as Error).message}`, err);
  }
  if (typeof parsed !== 'object' || parsed === null) throw bad('is not a JSON object');
  const raw = parsed as Record<string, unknown>;
  let config: CheckedFactoryVmConfig;
  try {
    config = checkFactoryVmConfig(raw.config as CheckedFactoryVmConfig, 'config');
  } catch (err) {
    throw bad(`has an invalid config: ${(err as Error).message}`, err);
  }
  if (!GUEST_KINDS.includes(raw.guest as GuestKind)) throw bad(`has an unknown guest ${JSON.stringify(raw.guest)}`);
  const info: TemplateInfo = { config, guest: raw.guest as GuestKind };
  if (raw.generation !== undefined) {
    if (typeof raw.generation !== 'string' || !/^[0-9a-f]{1,16}$/.test(raw.generation)) {
      throw bad(`has an invalid generation ${JSON.stringify(raw.generation)}`);
    }
    info.generation = raw.generation;
  }
  return info;
}
