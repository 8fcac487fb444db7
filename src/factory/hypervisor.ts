/**
 * What the factory needs from a hypervisor, and nothing more: boot a VM until its agent
 * answers, pause/resume/stop it, snapshot it, restore a snapshot into a new VM, and three agent
 * requests that make a clone unique. Kata's lesson (STYLE.md): keep this interface small, so the
 * factory's rules (B31-B39) are tested fast against a fake and for real against the VMM
 * (`vm-hypervisor.ts`, on src/vm's `Vm`).
 *
 * Everything here runs on the JS thread; every call that waits on a VM returns a Promise.
 */
import type { CheckedFactoryVmConfig } from './vm-config.js';

/** Which guest answers on the agent channel (the `agent` field of its `ping`, docs/protocol.md). */
export type GuestKind = 'agent' | 'probe';

/** The agent requests a clone needs before it is handed over (Kata B39). */
export interface GuestAgent {
  /** Adds host randomness to the guest's pool (the agent's `rng.reseed`). */
  rngReseed(seed: Buffer): Promise<void>;
  /** Sets the guest's realtime clock (the agent's `time.sync`). */
  timeSync(now: Date): Promise<void>;
}

/** One VM as the factory handles it. */
export interface FactoryVm {
  /** Unique in this process; used in logs. */
  readonly id: string;
  readonly guest: GuestKind;
  /**
   * For a VM restored from a template: the generation the template's guest had when it was
   * snapshotted. A clone must report a different one (the probe's uniqueness check).
   */
  readonly templateGeneration?: string;
  readonly agent: GuestAgent;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Writes `dir/memory` and `dir/state` (the VM must be paused). */
  snapshot(dir: string): Promise<void>;
  /** Idempotent. */
  stop(): Promise<void>;
  /**
   * The VM's generation id (16 hex digits, new for every VM, restored ones included), once the
   * guest has answered on its agent channel.
   */
  generation(): Promise<string>;
}

export interface Hypervisor<V extends FactoryVm = FactoryVm> {
  /** Creates and starts a VM and resolves once its agent answers (Kata's NewVM + agent check). */
  boot(config: CheckedFactoryVmConfig): Promise<V>;
  /**
   * Builds a new VM from the snapshot in `dir`, left paused (Kata: "the VM comes back paused",
   * no agent check). `template` says what the template was. With `running`, the VM runs at
   * once and the request that makes it unique may already be on its way (the factory's
   * hand-over: see `FactoryVm.generation`).
   */
  restore(dir: string, template: TemplateInfo, options?: { running?: boolean }): Promise<V>;
  /**
   * `dir` will be restored again soon: make what can be made ahead of that restore, in the
   * background. Returns at once; a failure shows in the restore.
   */
  prepareRestore(dir: string): void;
  /**
   * `dir` will not be restored again (its template is closing): release what was prepared
   * for the next restore, which holds the snapshot's files open. Resolves once they are closed.
   */
  forget(dir: string): Promise<void>;
}

/** What the factory records next to a template's snapshot (`<state>/template.json`). */
export interface TemplateInfo {
  /** The config the template was booted from (as checked, defaults filled in). */
  config: CheckedFactoryVmConfig;
  guest: GuestKind;
  /** The probe VM's generation at snapshot time; undefined for the Linux agent. */
  generation?: string;
}

/**
 * Where a template's files live: a tmpfs in production (`tmpfs.ts`), a plain directory in unit
 * tests. `prepare` creates and mounts it, undoing its own work when it fails; `remove` unmounts
 * and deletes it, ignoring errors as Kata's template close does (it logs them instead).
 */
export interface StateFs {
  prepare(path: string, sizeMiB: number): Promise<void>;
  remove(path: string): Promise<void>;
}
