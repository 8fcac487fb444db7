// Public surface of nodevisor. Only exports live here; each name is defined in its layer.
export { NodevisorError, type NodevisorErrorDetails } from './errors.js';
export { buildInfo, type BuildInfo, type RestoreCounts } from './native/binding.js';

// Configuration and kernel parameters (Kata's katautils).
export type { FactoryConfig, HypervisorConfig, Param, RuntimeConfig } from './config/types.js';
export {
  getKernelParams,
  kernelParamsToCmdline,
  needSystemd,
  NO_TRACE_KERNEL_PARAMS,
  setKernelParams,
  SYSTEMD_KERNEL_PARAMS,
} from './config/kernel-params.js';
export { checkFactoryConfig } from './factory/check-config.js';

// Rootfs.
export type { RootFs } from './rootfs/rootfs.js';
export { isBlockDevice, resolvePath } from './rootfs/paths.js';
export { resolveRootFs, type ResolvedRootFs } from './rootfs/resolve.js';
export { EPHEMERAL_TYPE, isEphemeralStorage, setEphemeralStorageType } from './rootfs/ephemeral.js';

// OCI spec → configuration.
export type * from './oci/spec.js';
export { parseConfigJson } from './oci/parse.js';
export { validateSpec } from './oci/validate.js';
export { validateId, ID_PATTERN } from './oci/ids.js';
export { containerType, sandboxId, type ContainerType } from './oci/annotations.js';
export {
  containerConfig,
  type Cmd,
  type ContainerConfig,
  type ContainerConfigOptions,
  type DeviceInfo,
  type EnvVar,
} from './oci/container-config.js';
export {
  sandboxConfig,
  DEFAULT_SHM_SIZE,
  type NetworkConfig,
  type SandboxConfig,
  type SandboxConfigOptions,
} from './oci/sandbox-config.js';

// Container id → sandbox id.
export { ContainerIdMapping, DEFAULT_MAPPING_ROOT } from './mapping/container-id-mapping.js';

// OCI hooks.
export { runHook, HOOK_OUTPUT_LIMIT, type RunHookOptions } from './hooks/run-hook.js';
export { preStartHooks, postStartHooks, postStopHooks, type HookKind, type HookRunOptions } from './hooks/hooks.js';
export type { HookState, ContainerStatus } from './hooks/state.js';

// Logging (traces go through @opentelemetry/api: register a tracer provider to get them).
export { setLogger, type Logger, type Subsystem } from './log/logger.js';

// Network namespaces (Kata B14-B18): lifecycle, running code inside, sandbox setup.
export {
  createNetNs,
  currentNetNsIdentity,
  deleteNetNs,
  DEFAULT_NETNS_DIR,
  enterNetNs,
  hostNetworkingRequested,
  netNsIdentity,
  sameNetNs,
  setupNetworkNamespace,
  type CreateNetNsOptions,
  type NsIdentity,
} from './netns/index.js';
export { connectSandboxNetwork, type ConnectedInterface, type SandboxNetwork } from './network/index.js';

// Block devices and disk images as VM disks.
export { inspectBlockDevice, type BlockDeviceInfo } from './rootfs/blockdev.js';

// Virtual machines (the VMM in the addon) and the probe guest.
export { Vm, type AgentStream, type DiskConfig, type NetdevConfig, type RestoreOptions, type VmConfig, type VmEvents, type VmExit, type VmPhase, type VmState } from './vm/vm.js';
export { probeGuestPath } from './guest/probe.js';

// The guest agent protocol (docs/protocol.md), the agent binary, and guest images.
export {
  AgentClient,
  type AgentClientOptions,
  type AgentProcess,
  type ContainerCreate,
  type ExitEvent,
  type ExitStatus,
  type Message as AgentMessage,
  type PingResult,
  type ProcessRef,
  type RequestOptions as AgentRequestOptions,
  type StdioEvent,
  type StorageMount,
} from './agent/index.js';
export { agentBinaryPath } from './guest/agent-binary.js';
export {
  buildGuestImage,
  DEFAULT_GUEST_MODULES,
  DEFAULT_KERNEL_PACKAGE,
  writeCpio,
  type CpioEntry,
  type GuestBuildOptions,
  type GuestImage,
} from './guest/image/index.js';

// The VM factory (Kata B31-B39): direct boots, template clones, an in-process pool.
export {
  currentFactory,
  DEFAULT_TEMPLATE_PATH,
  Factory,
  FactoryVmHandle,
  handleFactory,
  newFactory,
  type FactoryRuntime,
  type FactoryVm,
  type FactoryVmConfig,
  type GuestKind,
  type NewFactoryConfig,
} from './factory/index.js';

// Sandboxes: createSandbox / createContainer, the Sandbox, and the isolation backends.
export {
  bootSandboxVm,
  createContainer,
  createSandbox,
  DEFAULT_SANDBOX_STATE_ROOT,
  diskSerial,
  factoryVmProvider,
  findSandbox,
  ISOLATIONS,
  isolationSupport,
  Sandbox,
  setSandboxVmProvider,
  type ContainerStdio,
  type CreateContainerOptions,
  type CreateSandboxOptions,
  type Isolation,
  type IsolationSupport,
  type SandboxContainerInfo,
  type SandboxContainerStatus,
  type SandboxProcess,
  type SandboxVm,
  type SandboxVmFactory,
  type SandboxVmProvider,
} from './sandbox/index.js';
