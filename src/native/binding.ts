/**
 * The only module that loads the native addon. Everything else imports the typed functions
 * from here, so the shape of the native surface is written down in one place.
 *
 * The addon is loaded lazily, on first use: pure-TypeScript parts of nodevisor (OCI
 * conversion, hooks, mapping) work on a machine where the addon was not built.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { NodevisorError } from '../errors.js';

export interface BuildInfo {
  version: string;
  napiVersion: number;
  compiler: string;
  cplusplus: number;
  sanitizers: string;
  assertions: boolean;
  arch: string;
}

/** A namespace's identity: device and inode of its nsfs file (`ls -iL /proc/self/ns/net`). */
export interface NsIdentity {
  dev: number;
  ino: number;
}

/** native/sys/blockdev.h `BlockDeviceInfo`; the rules for each field are written there. */
export interface BlockDeviceInfo {
  kind: 'block' | 'file' | 'other';
  /** Device number of a block device; 0 for anything else. */
  major: number;
  minor: number;
  /** Block device: BLKGETSIZE64; regular file: its size; other: 0. */
  sizeBytes: number;
  /** Block device: BLKSSZGET; regular file: 512; other: 0. */
  logicalBlockSize: number;
  /** Block device: BLKROGET. Else: not writable by this process, or on a read-only mount. */
  readOnly: boolean;
  /** /sys/dev/block/<major>:<minor>/dm exists. */
  deviceMapper: boolean;
}

/** What `vmCreate` takes; src/vm/vm.ts has already checked and defaulted every field. */
export interface NativeVmConfig {
  kernel: string;
  initrd?: string;
  cmdline?: string;
  memoryMiB: number;
  vcpus: number;
  /** How long a read of the probe's wait port blocks before returning 0. */
  waitTimeoutMs?: number;
  /** virtio-mmio devices: the agent console, disks attached at boot, empty hot-plug slots. */
  agentConsole?: boolean;
  disks?: NativeDiskConfig[];
  hotplugSlots?: number;
  /** virtio-net endpoints at boot and empty net slots (src/vm/netdev.ts checked them). */
  netdevs?: NativeNetdevConfig[];
  hotplugNetSlots?: number;
  /** Also list the devices as `virtio_mmio.device=` on the kernel command line. */
  virtioCmdline?: boolean;
  /** 'pvh': start a guest with the nodevisor user-entry note at its PVH entry anyway. */
  bootEntry?: 'auto' | 'pvh';
}

export interface NativeDiskConfig {
  path: string;
  readOnly?: boolean;
  serial?: string;
}

export interface NativeNetdevConfig {
  tapFd?: number;
  tapName?: string;
  netns?: string;
  mac: number[];
}

export type NativeVmEventKind = 'console' | 'phase' | 'exit' | 'agent-readable' | 'agent-writable';

/** A VM in the addon (native/addon/vm_binding.cc). Each method says which thread does the work. */
export interface NativeVmHandle {
  /** JS thread: spawns the vCPU threads (never waits on the guest); `paused`: they start parked. */
  start(paused?: boolean): Promise<void>;
  /** A libuv worker: kicks every vCPU out of KVM_RUN and waits until each is parked. */
  pause(): Promise<void>;
  /** JS thread. */
  resume(): Promise<void>;
  /** A libuv worker: stops and joins the vCPU threads. Idempotent. */
  stop(): Promise<void>;
  /** JS thread. 'created' | 'running' | 'paused' | 'exited' | 'stopped'. */
  state(): string;
  /** JS thread: queues bytes for the UART; returns how many were accepted. */
  writeConsole(bytes: Uint8Array): number;
  /** A libuv worker: opens the disk and puts it in the first free hot-plug slot → the slot. */
  attachDisk(disk: NativeDiskConfig): Promise<number>;
  /** A libuv worker: empties a slot (the guest sees capacity 0). */
  detachDisk(slot: number): Promise<void>;
  /** A libuv worker: opens the tap (inside its netns) into the first free net slot → the slot. */
  attachNet(net: NativeNetdevConfig): Promise<number>;
  /** A libuv worker: empties a net slot (the guest sees the link go down). */
  detachNet(slot: number): Promise<void>;
  /** JS thread: queues bytes for the agent console; returns how many it took (bounded buffer). */
  writeAgent(bytes: Uint8Array): number;
  /** JS thread: takes up to `max` bytes of the guest's agent-console output. */
  readAgent(max: number): Buffer;
  /** A libuv worker, VM paused: writes `dir/memory` and `dir/state` (EBUSY when not paused). */
  snapshot(dir: string): Promise<void>;
  /** JS thread: the VM generation id, 16 hex digits (new for every VM, restored clones included). */
  generation(): string;
}

/**
 * The same native object's test-only methods. src/testing.ts is their one user, so they are
 * neither members of `Vm` nor in the types a user of the package sees.
 */
export interface NativeVmTestMethods {
  /** JS thread: the next read of the probe's wait port returns `word`. */
  postWaitWord(word: number): boolean;
  /** JS thread: a copy of guest memory (at most 1 MiB). */
  debugReadGuest(address: number, length: number): Buffer;
}

/** How a process's restores went: see `Vm.restoreCounts`. */
export interface RestoreCounts {
  /** Restores that took a VM prepared ahead at once, on the calling thread (its directory on tmpfs or ramfs, unchanged). */
  takenNow: number;
  /** Restores that took a prepared VM after comparing its files (inode, size, mtime) on a libuv worker. */
  takenAfterCheck: number;
  /** Restores that assembled their VM themselves (nothing prepared for the directory, or it was stale). */
  assembled: number;
}

/** The raw addon, as native/addon/module.cc exports it. Each entry says which thread runs it. */
export interface NativeAddon {
  /** JS thread. Hands the error class to C++ once, right after loading. */
  init(errorClass: typeof NodevisorError): void;
  /** JS thread. */
  buildInfo(): BuildInfo;

  /**
   * A libuv worker thread, which starts one short-lived thread that unshares and bind-mounts
   * (so no pooled thread changes namespace). `name` '' draws `nodevisor-<32 hex>`. → the path.
   */
  createNetNs(dir: string, name: string): Promise<string>;
  /** A libuv worker thread. Lazy unmount + unlink; resolves false when the path did not exist. */
  deleteNetNs(path: string): Promise<boolean>;
  /** A libuv worker thread. Rejects (EINVAL) "not a network namespace: <path>". */
  checkNetNs(path: string): Promise<NsIdentity>;
  /** JS thread (it asks about the calling thread): /proc/thread-self/ns/net. */
  threadNetNsIdentity(): NsIdentity;
  /**
   * JS thread, synchronous: setns the JS thread into `path`, call `fn`, setns back (also when
   * `fn` throws; a failure to switch back stops the process). Use src/netns `enterNetNs`,
   * which also rejects async functions.
   */
  enterNetNs<T>(path: string, fn: () => T): T;
  /** A libuv worker thread (stat and ioctls may wait on the device). */
  inspectBlockDevice(path: string): Promise<BlockDeviceInfo>;
  /**
   * Builds a VM on a libuv worker thread (reads the kernel, KVM ioctls, loads the ELF) and
   * resolves its handle. `onEvent` runs on the JS thread, fed by one thread-safe function per
   * VM (vCPU threads never touch N-API). Use src/vm `Vm.create`, which validates first.
   */
  vmCreate(config: NativeVmConfig, onEvent: (kind: NativeVmEventKind, payload: unknown) => void): Promise<NativeVmHandle & NativeVmTestMethods>;
  /**
   * Builds a new VM from a snapshot directory on a libuv worker thread (reads and checks
   * `dir/state`, maps `dir/memory` copy-on-write, restores every vCPU and device, reopens
   * disks), or from the restore prepared for `dir`, starts it there (paused or running), and
   * resolves its handle. `agentInput` is in the guest's agent channel before it runs. Use src/vm
   * `Vm.restore`.
   */
  vmRestore(
    dir: string,
    onEvent: (kind: NativeVmEventKind, payload: unknown) => void,
    options: { paused: boolean; agentInput?: Uint8Array },
  ): Promise<NativeVmHandle & NativeVmTestMethods>;
  /** Returns at once: a background thread prepares the next restore of `dir` (native/vmm/restore_spares.h). */
  vmPrepareRestore(dir: string): void;
  /** A libuv worker: drops the restore made ahead for `dir` and waits until its files are closed. */
  vmForgetSnapshot(dir: string): Promise<void>;
  /** How this process's restores went (native/vmm/restore_spares.h). */
  vmRestoreCounts(): RestoreCounts;
  /** A libuv worker: waits until every stopped VM's fds and guest memory are released (native/vmm/util/reaper.h). */
  vmDrainTeardown(): Promise<void>;
}

const require = createRequire(import.meta.url);

/** The package root: this file is src/native/binding.ts or dist/src/native/binding.js. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  throw new NodevisorError('cannot find the nodevisor package root (binding.gyp)', { code: 'ENOENT' });
}

/** Candidate addon paths, in the order they are tried. */
function addonCandidates(): string[] {
  const root = packageRoot();
  const fromEnv = process.env.NODEVISOR_ADDON;
  const list = [
    join(root, 'build', 'Release', 'nodevisor.node'),
    join(root, 'build', 'Debug', 'nodevisor.node'),
  ];
  return fromEnv ? [resolve(fromEnv), ...list] : list;
}

let loaded: NativeAddon | undefined;

/** Loads the addon once; throws a NodevisorError naming the paths tried and how to build. */
export function addon(): NativeAddon {
  if (loaded) return loaded;
  if (process.platform !== 'linux') {
    throw new NodevisorError(`nodevisor's native addon runs on Linux only (this is ${process.platform})`, {
      code: 'ENOTSUP',
    });
  }
  const tried = addonCandidates();
  const failures: string[] = [];
  for (const path of tried) {
    if (!existsSync(path)) {
      failures.push(`${path} (missing)`);
      continue;
    }
    try {
      const mod = require(path) as NativeAddon;
      mod.init(NodevisorError);
      loaded = mod;
      return mod;
    } catch (err) {
      failures.push(`${path} (${(err as Error).message})`);
    }
  }
  throw new NodevisorError(
    `nodevisor's native addon could not be loaded. Tried:\n  ${failures.join('\n  ')}\n` +
      `Build it with \`npm run build\` (or \`npx node-gyp rebuild\`) in ${packageRoot()}; ` +
      'it needs python3, make and a C++20 compiler. NODEVISOR_ADDON=<path> selects another binary.',
    { code: 'ENOADDON' },
  );
}

/** How the loaded addon was built (version, compiler, sanitizers, ...). JS thread; loads the addon. */
export function buildInfo(): BuildInfo {
  return addon().buildInfo();
}
