/**
 * A KVM virtual machine running inside this Node process (DESIGN §2, §3).
 *
 * Every call that can wait on the VM returns a Promise; the event loop never blocks on KVM.
 * Events arrive on the JS thread: 'console' (Buffer of guest serial output), 'phase'
 * ({ code, ns }: a write to port 0x80, ns since `start()`), 'exit' ({ reason, code, detail? }:
 * 'stopped', 'guest-exit', 'reset', 'shutdown', 'internal-error', ...).
 *
 * Keep a reference to a running Vm: the native handle stops its vCPU threads when it is
 * garbage-collected (and when the Node environment shuts down).
 *
 * Snapshots (DESIGN §3): `vm.snapshot(dir)` on a paused VM writes `dir/memory` and `dir/state`;
 * `Vm.restore(dir)` builds a new VM from them in this process, its memory mapped copy-on-write
 * from `dir/memory`. Snapshot the VM while its agent channel is idle: the restored VM gets a
 * fresh channel (docs/snapshot-format.md).
 */
import { EventEmitter } from 'node:events';

import { invalid, NodevisorError, wrapError } from '../errors.js';
import { logger } from '../log/logger.js';
import { addon, type NativeVmEventKind, type NativeVmHandle, type RestoreCounts } from '../native/binding.js';
import { AgentStream } from './agent-stream.js';
import { checkDisk, checkVmConfig, type DiskConfig, type VmConfig } from './config.js';
import { checkNetdev, type NetdevConfig } from './netdev.js';

export type { DiskConfig, VmConfig } from './config.js';
export type { NetdevConfig } from './netdev.js';
export type { AgentStream } from './agent-stream.js';

export type VmState = 'created' | 'running' | 'paused' | 'exited' | 'stopped';

export interface VmPhase {
  /** The byte the guest wrote to port 0x80 (0x40 kernel start, 0x41 ready). */
  code: number;
  /** Monotonic nanoseconds since `start()` was called. */
  ns: number;
}

export interface VmExit {
  reason: string;
  /** The value written to the exit port (reason 'guest-exit'), else 0. */
  code: number;
  detail?: string;
  /**
   * Events the guest produced faster than JS took them, dropped to keep the queue to JS
   * bounded (native/addon/vm_events.h): port-0x80 writes and serial-console bytes.
   */
  droppedPhases?: number;
  droppedConsoleBytes?: number;
}

/** `Vm.restore` options. */
export interface RestoreOptions {
  /** Leave the restored VM paused (`resume()` runs it). Default false: it runs at once. */
  paused?: boolean;
  /**
   * Bytes for the guest's agent channel, delivered as part of the restore: they are in the
   * guest's receive buffers before it runs, so a running clone answers its first request
   * (e.g. the factory's uniqueness check) while the host sets up its side. At most 1 MiB.
   */
  agentInput?: Uint8Array;
}

/** Largest `agentInput` a restore takes (well inside the agent channel's 4 MiB buffer). */
export const MAX_RESTORE_AGENT_INPUT = 1 << 20;

export interface VmEvents {
  console: [data: Buffer];
  phase: [phase: VmPhase];
  exit: [exit: VmExit];
}

/**
 * src/testing.ts's way into a Vm (set by the class's static block): the native handle, for its
 * test-only methods, and the native event callback. src/index.ts does not export it.
 */
export let vmTestAccess: {
  handle(vm: Vm): NativeVmHandle;
  dispatch(vm: Vm, kind: string, payload: unknown): void;
};

export class Vm extends EventEmitter<VmEvents> {
  #handle: NativeVmHandle | undefined;
  #exit: VmExit | undefined;
  #agent: AgentStream | undefined;

  static {
    vmTestAccess = {
      handle: (vm) => vm.#native(),
      dispatch: (vm, kind, payload) => vm.#dispatch(kind as NativeVmEventKind, payload),
    };
  }

  /** virtio-net endpoints given at boot: the snapshot format records empty net slots only. */
  #bootNetDevices = 0;

  private constructor() {
    super();
  }

  /** Validates `config`, then builds the VM off the JS thread. The VM is not running yet. */
  static async create(config: VmConfig): Promise<Vm> {
    const checked = await checkVmConfig(config);
    const vm = await Vm.#build('cannot create the VM', (onEvent) => addon().vmCreate(checked, onEvent));
    vm.#bootNetDevices = checked.netdevs.length;
    return vm;
  }

  /**
   * A new VM from a snapshot directory written by `vm.snapshot(dir)`, built off the JS thread:
   * memory mapped copy-on-write from `dir/memory` (nothing copied; clones of one snapshot share
   * its pages until they write), every vCPU and device restored, hot-plugged disks reopened by
   * path, a fresh agent channel, a new `generation`. Runs at once unless `{ paused: true }`.
   * A truncated, corrupted, foreign-version or other-CPU snapshot rejects with a
   * NodevisorError (code EBADSNAPSHOT) naming the file; nothing is left behind. A VM prepared
   * for `dir` (`Vm.prepareRestore`) is taken instead of building one: at once, on this thread,
   * for a running restore of a directory on tmpfs or ramfs that did not change (its vCPU 0 then
   * loads the clock and timers before the guest runs; a failure there ends the VM with exit
   * `internal-error`), else after a libuv worker compared its files.
   */
  static async restore(dir: string, options: RestoreOptions = {}): Promise<Vm> {
    if (typeof dir !== 'string' || dir.length === 0 || dir.includes('\0')) {
      throw invalid('Vm.restore: dir must be a non-empty path without NUL characters');
    }
    if (typeof options !== 'object' || options === null) throw invalid('Vm.restore: options must be an object');
    for (const key of Object.keys(options)) {
      if (key !== 'paused' && key !== 'agentInput') {
        throw invalid(`Vm.restore: option ${key} cannot be given (memory, vCPUs and devices come from the snapshot)`);
      }
    }
    const paused = options.paused ?? false;
    if (typeof paused !== 'boolean') throw invalid('Vm.restore: paused must be a boolean');
    const { agentInput } = options;
    if (agentInput !== undefined) {
      if (!(agentInput instanceof Uint8Array)) throw invalid('Vm.restore: agentInput must be a Uint8Array (a Buffer)');
      if (agentInput.byteLength > MAX_RESTORE_AGENT_INPUT) {
        throw invalid(`Vm.restore: agentInput is ${agentInput.byteLength} bytes, over the ${MAX_RESTORE_AGENT_INPUT} maximum`);
      }
    }
    // Built and started on a libuv worker, in one step: a running guest gets going while this
    // thread sets up its side. Events it sends before the handle is here find this Vm (#build).
    const vm = await Vm.#build(`cannot restore the VM from ${dir}`, (onEvent) =>
      addon().vmRestore(dir, onEvent, agentInput !== undefined && agentInput.byteLength > 0 ? { paused, agentInput } : { paused }),
    );
    // The guest may have ended before the handle arrived: its exit event found no handle to stop.
    if (vm.#exit) await vm.#native().stop();
    return vm;
  }

  /**
   * Prepares the next `Vm.restore(dir)` on a background thread, for a snapshot that is
   * restored again and again (a template): the VM restored as far as it can be without knowing
   * when it will run — the snapshot read and checked, its memory file mapped and registered
   * with KVM, the irqchip, the vCPUs with their registers, the devices with their worker
   * threads, the vCPU threads started and parked, its own generation id. That restore then only
   * loads what counts time (the timers, the TSC, the clock, the PIT), hands in the agent input
   * and resumes: ~0.1 ms on the restoring thread instead of ~0.35 ms, flat in the guest's
   * memory size (the long way grows with it). The guest finds no time passed while the VM
   * waited. Returns at once. One restore is kept prepared, for the directory asked last; it
   * keeps `dir/memory` open and mapped, and two parked threads, until `Vm.forgetSnapshot(dir)`.
   * The restore checks the files are still the ones prepared (inode, size, mtime) and otherwise
   * takes the long way. Off with NODEVISOR_WARM_VM=0.
   *
   * The preparation takes a CPU for ~0.5-1 ms: ask when no VM is starting (the factory asks
   * once a clone is handed over).
   */
  static prepareRestore(dir: string): void {
    if (typeof dir !== 'string' || dir.length === 0 || dir.includes('\0')) {
      throw invalid('Vm.prepareRestore: dir must be a non-empty path without NUL characters');
    }
    addon().vmPrepareRestore(dir);
  }

  /**
   * Drops the restore prepared for `dir` (`Vm.prepareRestore`) and stops preparing more;
   * resolves once its files are closed and unmapped, so `dir`'s filesystem can be unmounted.
   * Nothing to drop is not an error.
   */
  static forgetSnapshot(dir: string): Promise<void> {
    if (typeof dir !== 'string' || dir.length === 0 || dir.includes('\0')) {
      return Promise.reject(invalid('Vm.forgetSnapshot: dir must be a non-empty path without NUL characters'));
    }
    return addon().vmForgetSnapshot(dir);
  }

  /**
   * How this process's restores went so far: how many took a VM prepared ahead at once (on
   * this thread: its directory is on tmpfs or ramfs, where a change to the files could not go
   * unnoticed, and none was reported), how many after comparing the files on a libuv worker,
   * and how many assembled their VM themselves. For tests and diagnostics.
   */
  static restoreCounts(): RestoreCounts {
    return addon().vmRestoreCounts();
  }

  /**
   * Resolves once every stopped VM's kernel resources (vCPU and VM fds, guest memory) are
   * released. `stop()` resolves when the VM's threads are stopped and leaves closing the VM fd
   * (~20 ms in the kernel) to background threads; this waits for them, e.g. before counting
   * open fds. They are also released before the Node environment exits.
   */
  static drainTeardown(): Promise<void> {
    return addon().vmDrainTeardown();
  }

  static async #build(
    what: string,
    make: (onEvent: (kind: NativeVmEventKind, payload: unknown) => void) => Promise<NativeVmHandle>,
  ): Promise<Vm> {
    const vm = new Vm();
    // The native side holds this callback for the VM's lifetime; a WeakRef keeps it from
    // pinning the Vm, so a dropped Vm can be collected (and its threads stopped).
    const ref = new WeakRef(vm);
    const onEvent = (kind: NativeVmEventKind, payload: unknown): void => {
      const target = ref.deref();
      if (target) target.#dispatch(kind, payload);
    };
    try {
      vm.#handle = await make(onEvent);
    } catch (err) {
      if (err instanceof NodevisorError) throw err;
      throw wrapError(what, err);
    }
    return vm;
  }

  #dispatch(kind: NativeVmEventKind, payload: unknown): void {
    if (kind === 'console') {
      this.emit('console', payload as Buffer);
    } else if (kind === 'phase') {
      this.emit('phase', payload as VmPhase);
    } else if (kind === 'agent-readable') {
      this.#agent?.onReadable();
    } else if (kind === 'agent-writable') {
      this.#agent?.onWritable();
    } else if (kind === 'exit') {
      this.#exit = payload as VmExit;
      // The guest ended (or stop() was called): join the vCPU threads now rather than at GC.
      // The agent stream ends after that stop, which has collected what the guest wrote last
      // (its transmit buffers are taken when the devices shut down).
      const agent = this.#agent;
      const stopped = this.#handle?.stop() ?? Promise.resolve();
      stopped.catch(() => undefined).finally(() => agent?.onVmEnded());
      this.emit('exit', this.#exit);
    } else {
      // An event this file does not know (an addon newer than it, or a bug): the VM has not
      // necessarily ended, so it is reported and otherwise ignored.
      logger('vmm').warn({ kind: String(kind) }, 'ignored an unknown native VM event');
    }
  }

  #native(): NativeVmHandle {
    if (!this.#handle) throw new NodevisorError('the VM was not created', { code: 'EINVAL' });
    return this.#handle;
  }

  get state(): VmState {
    return this.#native().state() as VmState;
  }

  /** How the VM ended, once it has. */
  get exitInfo(): VmExit | undefined {
    return this.#exit;
  }

  /** Starts the vCPU threads; resolves once they are running (not when the guest is ready). */
  start(): Promise<void> {
    return this.#native().start();
  }

  /** Resolves once every vCPU is parked outside the guest. */
  pause(): Promise<void> {
    return this.#native().pause();
  }

  resume(): Promise<void> {
    return this.#native().resume();
  }

  /**
   * Writes a snapshot of this paused VM: `dir/memory` (guest RAM, sparse) and `dir/state`
   * (docs/snapshot-format.md); `dir` is created if missing. A VM that is not paused is refused
   * (EBUSY). The VM stays paused and can be resumed.
   */
  snapshot(dir: string): Promise<void> {
    if (typeof dir !== 'string' || dir.length === 0 || dir.includes('\0')) {
      return Promise.reject(invalid('snapshot: dir must be a non-empty path without NUL characters'));
    }
    if (this.#bootNetDevices > 0) {
      // A tap is host state a clone cannot share; the VMM refuses a slot holding one too.
      return Promise.reject(
        new NodevisorError(
          'snapshot: a VM with network endpoints given at boot (netdevs) cannot be snapshotted: give it empty net slots (hotplugNetSlots) and attach endpoints after restore',
          { code: 'ENOTSUP' },
        ),
      );
    }
    return this.#native().snapshot(dir);
  }

  /**
   * This VM's generation id (16 hex digits): drawn anew for every VM, so each VM restored from
   * a snapshot has its own. Guests read it from the VM generation port (0x508).
   */
  get generation(): string {
    return this.#native().generation();
  }

  /**
   * Stops the VM: resolves once its vCPU and device threads are stopped and joined. Its fds
   * and guest memory are released right after, off this path (`Vm.drainTeardown()` waits for
   * that). Idempotent; emits 'exit' { reason: 'stopped' } unless the guest ended first.
   */
  stop(): Promise<void> {
    return this.#native().stop();
  }

  /** Queues bytes for the guest's serial port; returns how many were accepted. */
  writeConsole(data: Uint8Array | string): number {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    return this.#native().writeConsole(bytes);
  }

  /**
   * The agent channel (the VM's virtio-console) as a Duplex stream, with flow control both
   * ways; it ends when the VM does. The protocol spoken on it is docs/protocol.md.
   */
  get agent(): AgentStream {
    if (!this.#agent) {
      const handle = this.#native();
      this.#agent = new AgentStream({
        writeAgent: (bytes) => handle.writeAgent(bytes),
        readAgent: (max) => handle.readAgent(max),
      });
      if (this.#exit) this.#agent.onVmEnded();
    }
    return this.#agent;
  }

  /**
   * Hot-plugs a disk into the first free slot (`Vm.create({ hotplugSlots })`) and resolves its
   * slot number; the guest sees the disk appear (a config-change interrupt). Errors: no free
   * slot (ENOSPC), a missing path (ENOENT), a serial over 20 bytes (EINVAL), the same
   * writable disk attached twice (EBUSY).
   */
  async attachDisk(disk: DiskConfig): Promise<number> {
    const checked = await checkDisk(disk, 'attachDisk');
    return this.#native().attachDisk(checked);
  }

  /** Empties a slot: the guest sees the disk's capacity drop to 0. */
  async detachDisk(slot: number): Promise<void> {
    if (!Number.isInteger(slot) || slot < 0 || slot > 0xffff_ffff) {
      throw invalid(`detachDisk: slot must be an integer from 0 to 4294967295, got ${String(slot)}`);
    }
    return this.#native().detachDisk(slot);
  }

  /**
   * Hot-plugs a network endpoint into the first free net slot (`Vm.create({ hotplugNetSlots })`)
   * and resolves its slot number: the guest's virtio-net device gets the MAC and its link comes
   * up (a config-change interrupt). A `tapName` is opened (created when missing) inside `netns`.
   * Errors: no free slot (ENOSPC), a bad MAC or name (EINVAL), a netns that is not one (EINVAL).
   */
  async attachNet(net: NetdevConfig): Promise<number> {
    const checked = checkNetdev(net, 'attachNet');
    return this.#native().attachNet(checked);
  }

  /** Empties a net slot: the guest sees its link go down; the tap is closed. */
  async detachNet(slot: number): Promise<void> {
    if (!Number.isInteger(slot) || slot < 0 || slot > 0xffff_ffff) {
      throw invalid(`detachNet: slot must be an integer from 0 to 4294967295, got ${String(slot)}`);
    }
    return this.#native().detachNet(slot);
  }
}
