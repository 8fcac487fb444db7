// The sandbox layer: createSandbox / createContainer on one path for every isolation backend.
export { createContainer, createSandbox, findSandbox } from './create.js';
export { Sandbox, type ContainerStdio, type SandboxContainerStatus, type SandboxContainerInfo } from './sandbox.js';
export {
  bootSandboxVm,
  diskSerial,
  factoryVmProvider,
  setSandboxVmProvider,
  type SandboxVm,
  type SandboxVmFactory,
  type SandboxVmProvider,
} from './vm-backend.js';
export { isolationSupport, type IsolationSupport } from './support.js';
export {
  DEFAULT_SANDBOX_STATE_ROOT,
  ISOLATIONS,
  type CreateContainerOptions,
  type CreateSandboxOptions,
  type Isolation,
  type RootFs,
  type SandboxProcess,
} from './types.js';
