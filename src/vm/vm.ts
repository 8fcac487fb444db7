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
 */
import { EventEmitter } from 'node:events';

import { invalid, NodevisorError, wrapError } from '../errors.js';
import { addon, type NativeVmEventKind, type NativeVmHandle } from '../native/binding.js';
import { AgentStream } from './agent-stream.js';
import { checkDisk, checkVmConfig, type DiskConfig, type VmConfig } from './config.js';

export type { DiskConfig, VmConfig } from './config.js';
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

export interface VmEvents {
  console: [data: Buffer];
  phase: [phase: VmPhase];
  exit: [exit: VmExit];
}

export class Vm extends EventEmitter<VmEvents> {
  #handle: NativeVmHandle | undefined;
  #exit: VmExit | undefined;
  #agent: AgentStream | undefined;

  private constructor() {
    super();
  }

  /** Validates `config`, then builds the VM off the JS thread. The VM is not running yet. */
  static async create(config: VmConfig): Promise<Vm> {
    const checked = await checkVmConfig(config);
    const vm = new Vm();
    // The native side holds this callback for the VM's lifetime; a WeakRef keeps it from
    // pinning the Vm, so a dropped Vm can be collected (and its threads stopped).
    const ref = new WeakRef(vm);
    const onEvent = (kind: NativeVmEventKind, payload: unknown): void => {
      const target = ref.deref();
      if (target) target.#dispatch(kind, payload);
    };
    try {
      vm.#handle = await addon().vmCreate(checked, onEvent);
    } catch (err) {
      if (err instanceof NodevisorError) throw err;
      throw wrapError('cannot create the VM', err);
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
    } else {
      this.#exit = payload as VmExit;
      // The guest ended (or stop() was called): join the vCPU threads now rather than at GC.
      // The agent stream ends after that stop, which has collected what the guest wrote last
      // (its transmit buffers are taken when the devices shut down).
      const agent = this.#agent;
      const stopped = this.#handle?.stop() ?? Promise.resolve();
      stopped.catch(() => undefined).finally(() => agent?.onVmEnded());
      this.emit('exit', this.#exit);
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

  /** Stops the VM and joins its threads. Idempotent; emits 'exit' { reason: 'stopped' } unless the guest ended first. */
  stop(): Promise<void> {
    return this.#native().stop();
  }

  /** Queues bytes for the guest's serial port; returns how many were accepted. */
  writeConsole(data: Uint8Array | string): number {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    return this.#native().writeConsole(bytes);
  }

  /** The probe guest's wait port: its next read returns `word` (see native/guest/probe/README.md). */
  postWaitWord(word: number): boolean {
    if (!Number.isInteger(word) || word < 0 || word > 0xfffffffe) {
      throw new NodevisorError('postWaitWord: word must be an integer from 0 to 0xfffffffe', { code: 'EINVAL' });
    }
    return this.#native().postWaitWord(word);
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

  /** @internal Tests: a copy of guest memory. */
  debugReadGuest(address: number, length: number): Buffer {
    return this.#native().debugReadGuest(address, length);
  }

  /** @internal Tests: save and restore every vCPU and device state of a paused VM. */
  debugSaveRestore(): number {
    return this.#native().debugSaveRestore();
  }
}
