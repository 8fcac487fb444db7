/**
 * The `'vm'` isolation backend (the default): a KVM VM in this process with the agent on its
 * virtio-console; a container's rootfs disk is hot-plugged with the container id as serial and
 * the agent finds it by that serial.
 *
 * Where the VM comes from (Kata B6, B8 step 7): the provider set with `setSandboxVmProvider`;
 * by default the VM factory `handleFactory` set (`currentFactory()`), else a VM booted directly
 * from the hypervisor config. A factory's VMs need hot-plug slots for the rootfs
 * (`hypervisorConfig.hotplugSlots` ≥ 1); a direct boot gets 4 when the config names none, and
 * 2 hot-plug net slots.
 *
 * The sandbox's network (docs/network.md): after the VM runs, `connectNetwork` hot-plugs a
 * virtio-net endpoint per netns interface (tap + tc redirect, `connectSandboxNetwork`; always
 * hot-plugged, as Kata does for factory VMs, B39) and configures the guest
 * (`configureGuestNetwork`); `stop` disconnects it before it stops the VM.
 *
 * JS thread only; VM operations are Promises from the addon.
 */
import { createHash } from 'node:crypto';

import { AgentClient } from '../agent/client.js';
import type { PingResult } from '../agent/messages.js';
import { kernelParamsToCmdline } from '../config/kernel-params.js';
import type { HypervisorConfig } from '../config/types.js';
import { NodevisorError, invalid, wrapError } from '../errors.js';
import { logger } from '../log/logger.js';
import { currentFactory } from '../factory/handle-factory.js';
import { MAX_SERIAL_BYTES } from '../vm/config.js';
import { connectSandboxNetwork } from '../network/connect.js';
import { configureGuestNetwork } from '../network/guest.js';
import { Vm, type VmConfig } from '../vm/vm.js';
import type { AgentDisk, BackendStartOptions, SandboxBackend } from './backend.js';

/** A running VM whose agent answered, as the sandbox gets it. */
export interface SandboxVm {
  vm: Vm;
  agent: AgentClient;
}

/** Gives the sandbox a running VM for `hypervisorConfig` (a factory, or a direct boot). */
export type SandboxVmProvider = (hypervisorConfig: HypervisorConfig) => Promise<SandboxVm>;

/** Hot-plug slots a directly booted sandbox VM gets when the config names none. */
export const DEFAULT_SANDBOX_HOTPLUG_SLOTS = 4;
/** Hot-plug net slots a directly booted sandbox VM gets (a CNI netns usually holds one veth). */
export const DEFAULT_SANDBOX_HOTPLUG_NET_SLOTS = 2;
/** How long a directly booted VM's agent may take to answer its first ping. */
const BOOT_TIMEOUT_MS = 30_000;
/** Where the guest agent mounts a container's rootfs (Kata: /run/kata-containers/shared/containers/<cid>). */
const GUEST_CONTAINERS_DIR = '/run/nodevisor/containers';

let provider: SandboxVmProvider | undefined;

/** Sets (or, with undefined, clears) where sandboxes take their VMs from. */
export function setSandboxVmProvider(next: SandboxVmProvider | undefined): void {
  provider = next;
}

/** Boots a VM for `hypervisorConfig` and waits until its agent (or the probe guest) answers. */
export async function bootSandboxVm(hypervisorConfig: HypervisorConfig): Promise<SandboxVm> {
  const hc = hypervisorConfig;
  if (typeof hc?.kernelPath !== 'string' || hc.kernelPath === '') throw invalid('hypervisorConfig.kernelPath must be set for isolation "vm"');
  const config: VmConfig = {
    kernel: hc.kernelPath,
    cmdline: kernelParamsToCmdline(hc.kernelParams ?? []),
    hotplugSlots: hc.hotplugSlots || DEFAULT_SANDBOX_HOTPLUG_SLOTS,
    hotplugNetSlots: hc.hotplugNetSlots ?? DEFAULT_SANDBOX_HOTPLUG_NET_SLOTS,
  };
  if (hc.memorySize) config.memoryMiB = hc.memorySize;
  if (hc.numVCPUs) config.vcpus = hc.numVCPUs;
  if (hc.initrdPath) config.initrd = hc.initrdPath;
  if (hc.imagePath) config.disks = [{ path: hc.imagePath }];
  const vm = await Vm.create(config);
  const agent = new AgentClient(vm.agent, { timeoutMs: 30_000 });
  try {
    await vm.start();
    await agent.request<PingResult>('ping', {}, { timeoutMs: BOOT_TIMEOUT_MS });
    return { vm, agent };
  } catch (err) {
    agent.close();
    await vm.stop().catch(() => undefined);
    throw wrapError(`the VM (${hc.kernelPath}) did not come up`, err);
  }
}

/**
 * The part of a VM factory (src/factory's `Factory`, DESIGN §5) a sandbox uses: `getVm` hands
 * over a running VM that is unique, as a handle carrying the `Vm` and its `AgentClient`
 * (`FactoryVmHandle`).
 */
export interface SandboxVmFactory {
  getVm(config: { hypervisorConfig: HypervisorConfig }): Promise<object>;
}

/**
 * A provider that takes sandbox VMs from `factory` (or from what `factory()` returns when it is
 * a getter, such as src/factory's `currentFactory`), and boots them directly when there is none.
 */
export function factoryVmProvider(factory: SandboxVmFactory | (() => SandboxVmFactory | undefined)): SandboxVmProvider {
  return async (hypervisorConfig) => {
    const source = typeof factory === 'function' ? factory() : factory;
    if (!source) return bootSandboxVm(hypervisorConfig);
    const handle = (await source.getVm({ hypervisorConfig })) as Partial<SandboxVm> & { stop?: () => Promise<void> };
    if (!(handle.vm instanceof Vm) || !(handle.agent instanceof AgentClient)) {
      await handle.stop?.().catch(() => undefined);
      throw new NodevisorError('the VM factory handed over a VM without a Vm and an AgentClient (not a FactoryVmHandle)', { code: 'EINVAL' });
    }
    return { vm: handle.vm, agent: handle.agent };
  };
}

/**
 * The serial a container's disk gets: the container id when it fits virtio-blk's 20 bytes, else
 * 20 hex digits of its SHA-256 (ids may be 200 characters long).
 */
export function diskSerial(containerId: string): string {
  if (Buffer.byteLength(containerId) <= MAX_SERIAL_BYTES) return containerId;
  return createHash('sha256').update(containerId).digest('hex').slice(0, MAX_SERIAL_BYTES);
}

/** The default provider: the factory handleFactory set, if any, else a direct boot. */
const fromCurrentFactory: SandboxVmProvider = factoryVmProvider(currentFactory);

export async function startVmBackend(options: BackendStartOptions): Promise<SandboxBackend> {
  const { vm, agent } = await (provider ?? fromCurrentFactory)(options.hypervisorConfig);
  logger('sandbox', { sandbox: options.sandboxId }).debug('sandbox VM ready');
  return new VmBackend(vm, agent, options.sandboxId);
}

class VmBackend implements SandboxBackend {
  readonly isolation = 'vm' as const;
  #stopped: Promise<void> | undefined;
  #disconnect: (() => Promise<void>) | undefined;

  constructor(
    readonly vm: Vm,
    readonly agent: AgentClient,
    private readonly sandboxId: string,
  ) {}

  async connectNetwork(netNsPath: string): Promise<() => Promise<void>> {
    if (this.#disconnect) throw new NodevisorError(`sandbox ${this.sandboxId}: the network is connected already`, { code: 'EEXIST' });
    const network = await connectSandboxNetwork(this.vm, netNsPath);
    const disconnect = () => network.disconnect();
    this.#disconnect = disconnect;
    try {
      const how = await configureGuestNetwork(this.agent, network);
      const log = logger('sandbox', { sandbox: this.sandboxId });
      if (how === 'refused') log.warn({ netns: netNsPath }, 'the guest refused network.update: its interfaces stay unconfigured');
      else log.debug({ netns: netNsPath, interfaces: network.interfaces.map((i) => i.name), how }, 'sandbox network connected');
    } catch (err) {
      await disconnect().catch(() => undefined);
      throw wrapError('cannot configure the network in the guest', err);
    }
    return disconnect;
  }

  rootfsMountPoint(containerId: string): string {
    return `${GUEST_CONTAINERS_DIR}/${containerId}`;
  }

  hostRootfs(target: string): string {
    throw new NodevisorError(
      `a host-mounted rootfs (${target}) needs a filesystem shared with the guest, which nodevisor's VM does not have: ` +
        'pass the block device or image file as rootFs.source (mounted: false), or use isolation "namespaces"',
      { code: 'ENOTSUP', path: target },
    );
  }

  async attachDisk(containerId: string, path: string, readOnly: boolean): Promise<AgentDisk> {
    const serial = diskSerial(containerId);
    const slot = await this.vm.attachDisk({ path, readOnly, serial });
    let released: Promise<void> | undefined;
    const release = async () => {
      // A VM that has ended has no slots left to empty.
      if (this.vm.exitInfo) return;
      await this.vm.detachDisk(slot);
    };
    return { locator: { serial }, release: () => (released ??= release()) };
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      // The qdiscs and filters live in the netns, which may outlive the VM: remove them first.
      const disconnected = this.#disconnect?.().catch((err: unknown) => err);
      const failed = await disconnected;
      this.agent.close();
      await this.vm.stop();
      if (failed !== undefined) throw failed;
    })();
    return this.#stopped;
  }
}
