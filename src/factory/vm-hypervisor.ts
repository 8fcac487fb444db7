/**
 * The factory's hypervisor on the real VMM: src/vm's `Vm` plus an `AgentClient` on its agent
 * channel. A VM is "booted" once its agent answers `ping` (Kata's NewVM checks the agent); the
 * ping's `agent` field says which guest it is (the Linux agent or the probe).
 *
 * JS thread only; every VM operation is a Promise from the addon.
 */
import { AgentClient } from '../agent/client.js';
import { encodeFrame } from '../agent/frame.js';
import type { PingResult } from '../agent/messages.js';
import { kernelParamsToCmdline } from '../config/kernel-params.js';
import { NodevisorError, wrapError } from '../errors.js';
import { Vm, type VmConfig } from '../vm/vm.js';
import type { FactoryVm, GuestKind, Hypervisor, TemplateInfo } from './hypervisor.js';
import type { CheckedFactoryVmConfig } from './vm-config.js';

/** How long a booted VM's agent may take to answer its first ping. */
export const DEFAULT_BOOT_TIMEOUT_MS = 30_000;
/** Agent requests of a handed-over VM (reseed, time sync, generation). */
const AGENT_TIMEOUT_MS = 10_000;

/** The guest names `ping` answers with. A Map: the name comes from the guest, so no prototype lookups. */
const GUESTS = new Map<unknown, GuestKind>([
  ['nodevisor-agent', 'agent'],
  ['nodevisor-probe', 'probe'],
]);

let nextId = 1;

/** The probe.generation request a running probe clone's restore delivers: its agent client's first id. */
const RESTORE_GENERATION_ID = 1;
const RESTORE_GENERATION_FRAME = encodeFrame({ id: RESTORE_GENERATION_ID, type: 'probe.generation' });

/** A VM the factory made, with its agent client. Sandbox creation uses `vm` and `agent`. */
export class FactoryVmHandle implements FactoryVm {
  readonly id = `factory-vm-${nextId++}`;
  readonly templateGeneration?: string;
  /** The answer to the probe.generation request the restore delivered, until `generation()` takes it. */
  #restoreGeneration: Promise<{ generation: unknown }> | undefined;

  constructor(
    readonly vm: Vm,
    readonly agent: AgentClient,
    readonly guest: GuestKind,
    templateGeneration?: string,
  ) {
    if (templateGeneration !== undefined) this.templateGeneration = templateGeneration;
  }

  /** @internal The restore delivered a probe.generation request with id `id`: the next `generation()` is its answer. */
  adoptGenerationRequest(id: number): void {
    const answer = this.agent.adopt<{ generation: unknown }>(id, 'probe.generation');
    answer.catch(() => undefined); // a VM stopped before anyone asks must not leave it unhandled
    this.#restoreGeneration = answer;
  }

  pause(): Promise<void> {
    return this.vm.pause();
  }

  resume(): Promise<void> {
    return this.vm.resume();
  }

  snapshot(dir: string): Promise<void> {
    return this.vm.snapshot(dir);
  }

  async stop(): Promise<void> {
    this.agent.close();
    await this.vm.stop();
  }

  /**
   * The probe's `probe.generation` (docs/protocol.md): the generation id the guest reads from
   * the VMM's port at each request. It must be the one the VMM drew for this VM; a guest still
   * showing another would not have noticed it was restored.
   */
  async generation(): Promise<string> {
    const delivered = this.#restoreGeneration;
    this.#restoreGeneration = undefined;
    const { generation } = await (delivered ?? this.agent.request<{ generation: unknown }>('probe.generation'));
    if (typeof generation !== 'string') throw new NodevisorError('probe.generation answered without a generation', { code: 'EPROTO' });
    if (generation !== this.vm.generation) {
      throw new NodevisorError(`the guest reads generation ${generation}, the VM has ${this.vm.generation}`, { code: 'ENOTUNIQUE' });
    }
    return generation;
  }
}

export interface VmHypervisorOptions {
  bootTimeoutMs?: number;
}

function vmConfigOf(config: CheckedFactoryVmConfig): VmConfig {
  const hc = config.hypervisorConfig;
  const vmConfig: VmConfig = {
    kernel: hc.kernelPath,
    cmdline: kernelParamsToCmdline(hc.kernelParams),
    memoryMiB: hc.memorySize,
    vcpus: hc.numVCPUs,
    hotplugSlots: hc.hotplugSlots,
    hotplugNetSlots: hc.hotplugNetSlots,
  };
  if (hc.initrdPath !== '') vmConfig.initrd = hc.initrdPath;
  if (hc.imagePath !== '') vmConfig.disks = [{ path: hc.imagePath }];
  return vmConfig;
}

export function vmHypervisor(options: VmHypervisorOptions = {}): Hypervisor<FactoryVmHandle> {
  const bootTimeoutMs = options.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS;
  return {
    async boot(config) {
      const vm = await Vm.create(vmConfigOf(config));
      const agent = new AgentClient(vm.agent, { timeoutMs: AGENT_TIMEOUT_MS });
      try {
        await vm.start();
        const pong = await agent.request<PingResult>('ping', {}, { timeoutMs: bootTimeoutMs });
        const guest = GUESTS.get(pong.agent);
        if (!guest) throw new NodevisorError(`unknown guest ${JSON.stringify(pong.agent)} on the agent channel`, { code: 'EPROTO' });
        return new FactoryVmHandle(vm, agent, guest);
      } catch (err) {
        agent.close();
        await vm.stop().catch(() => undefined);
        throw wrapError(`the VM (${config.hypervisorConfig.kernelPath}) did not come up`, err);
      }
    },

    async restore(dir: string, template: TemplateInfo, options: { running?: boolean } = {}) {
      // A running probe clone gets its uniqueness check with the restore (agentInput): the guest
      // answers it as it starts, while this thread sets up the agent client.
      const check = options.running === true && template.guest === 'probe' && template.generation !== undefined;
      const vm = await Vm.restore(dir, { paused: options.running !== true, ...(check ? { agentInput: RESTORE_GENERATION_FRAME } : {}) });
      const handle = new FactoryVmHandle(vm, new AgentClient(vm.agent, { timeoutMs: AGENT_TIMEOUT_MS }), template.guest, template.generation);
      if (check) handle.adoptGenerationRequest(RESTORE_GENERATION_ID);
      return handle;
    },

    prepareRestore(dir: string) {
      Vm.prepareRestore(dir);
    },

    forget(dir: string) {
      return Vm.forgetSnapshot(dir);
    },
  };
}
