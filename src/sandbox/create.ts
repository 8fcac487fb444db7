/**
 * `createSandbox` and `createContainer` (Kata B8, B9) on one orchestration path for every
 * isolation backend. Each step's failure undoes the steps before it (the netns nodevisor made,
 * the backend with its VM or agent, disks, loop devices, mounts, the container, the mapping)
 * and rejects with an error naming the step, the cause chained.
 *
 * Differences from Kata, and why:
 * - Kata left the netns it created, and a created container, behind when a later step failed.
 * - createContainer writes the id mapping once (the seed wrote it twice in a row).
 * - createContainer's prestart hooks still run after the container was created (Kata's order),
 *   but their failure removes that container again.
 *
 * JS thread only.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { NodevisorError, invalid } from '../errors.js';
import { preStartHooks } from '../hooks/hooks.js';
import { logger } from '../log/logger.js';
import { ContainerIdMapping } from '../mapping/container-id-mapping.js';
import { deleteNetNs } from '../netns/netns.js';
import { setupNetworkNamespace } from '../netns/setup.js';
import { sandboxId as sandboxIdOf } from '../oci/annotations.js';
import { containerConfig } from '../oci/container-config.js';
import { sandboxConfig } from '../oci/sandbox-config.js';
import type { Spec } from '../oci/spec.js';
import { setEphemeralStorageType } from '../rootfs/ephemeral.js';
import { resolveRootFs } from '../rootfs/resolve.js';
import { withSpan } from '../trace/tracing.js';
import type { BackendStarter } from './backend.js';
import { startNamespacesBackend } from './namespaces-backend.js';
import { Sandbox } from './sandbox.js';
import { DEFAULT_SANDBOX_STATE_ROOT, ISOLATIONS, type CreateContainerOptions, type CreateSandboxOptions, type Isolation, type SandboxProcess } from './types.js';
import { UndoStack, stepError } from './undo.js';
import { startVmBackend } from './vm-backend.js';

const STARTERS: Record<Isolation, BackendStarter> = {
  vm: startVmBackend,
  namespaces: startNamespacesBackend,
};

/** The sandboxes of this process that are not deleted, by id. */
const live = new Map<string, Sandbox>();

/** A sandbox this process created and has not deleted. */
export function findSandbox(sandboxId: string): Sandbox | undefined {
  return live.get(sandboxId);
}

/** @internal For tests: replaces a backend starter (fast orchestration tests with a fake). */
export function setBackendStarter(isolation: Isolation, starter: BackendStarter | undefined): void {
  STARTERS[isolation] = starter ?? (isolation === 'vm' ? startVmBackend : startNamespacesBackend);
}

function checkCommon(options: { spec?: unknown; rootFs?: unknown }, operation: string): void {
  if (typeof options !== 'object' || options === null) throw invalid(`${operation}: options must be an object`);
  if (typeof options.spec !== 'object' || options.spec === null) throw invalid(`${operation}: spec must be an OCI spec object`);
  if (typeof options.rootFs !== 'object' || options.rootFs === null) throw invalid(`${operation}: rootFs must be an object ({ mounted, ... })`);
}

/**
 * Creates a sandbox with its first container (not started): Kata B8's steps in order.
 * Resolves to the sandbox and the container's process.
 */
export function createSandbox(options: CreateSandboxOptions): Promise<{ sandbox: Sandbox; process: SandboxProcess }> {
  return withSpan('createSandbox', { container: String(options?.containerId) }, async (span) => {
    const undo = new UndoStack();
    let step = 'check the options';
    let sandboxId = String(options?.containerId);
    try {
      checkCommon(options, 'createSandbox');
      const isolation = options.isolation ?? 'vm';
      if (!ISOLATIONS.includes(isolation)) throw invalid(`isolation must be one of ${ISOLATIONS.join(', ')}, not ${JSON.stringify(isolation)}`);

      step = 'sandbox config';
      const config = await sandboxConfig(options.spec, options.runtimeConfig, {
        bundlePath: options.bundlePath,
        containerId: options.containerId,
        console: options.console ?? '',
        detach: options.disableOutput ?? false,
        systemdCgroup: options.systemdCgroup ?? false,
      });
      sandboxId = config.id;
      step = 'sandbox id';
      if (live.has(sandboxId)) throw new NodevisorError(`sandbox ${sandboxId} exists in this process`, { code: 'EEXIST' });
      // Kata's Stateful (shim v2 keeps state in memory): here, no mapping is written.
      const builtIn = options.builtIn ?? false;

      step = 'rootfs';
      if (!options.rootFs.mounted && config.containers.length === 1) {
        config.containers[0]!.rootFs = (await resolveRootFs(options.rootFs)).rootFs;
      }

      // The netns exists before anything else is created (Kata B8 step 5).
      step = 'network namespace';
      const network = await setupNetworkNamespace(config.networkConfig);
      if (network.netNsCreated && !config.networkConfig.netNsCreated) {
        undo.push('delete the network namespace', () => deleteNetNs(network.netNsPath));
      }

      step = 'prestart hooks';
      const spec = config.containers[0]!.spec;
      await preStartHooks(spec, options.containerId, options.bundlePath, network.netNsPath ? { netns: network.netNsPath } : {});

      step = 'sandbox state directory';
      const stateRoot = options.stateRoot ?? DEFAULT_SANDBOX_STATE_ROOT;
      const stateDir = join(stateRoot, sandboxId);
      await mkdir(stateRoot, { recursive: true, mode: 0o700 });
      await mkdir(stateDir, { mode: 0o700 }).catch((err: unknown) => {
        throw new NodevisorError(`${stateDir} exists (a sandbox with id ${sandboxId} is live, or was not deleted)`, { code: 'EEXIST', path: stateDir, cause: err });
      });
      undo.push('remove the state directory', () => rm(stateDir, { recursive: true, force: true }));

      step = `start the ${isolation} backend`;
      const backend = await STARTERS[isolation]({
        sandboxId,
        netNsPath: network.netNsPath,
        hypervisorConfig: config.hypervisorConfig,
        spec,
        stateDir,
        ...(options.agentPath ? { agentPath: options.agentPath } : {}),
      });
      undo.push(`stop the ${isolation} backend`, () => backend.stop());
      span.setAttribute('sandbox', sandboxId);

      // A VM gets the netns's interfaces hot-plugged (Kata's tcfilter model, B39); an agent in
      // namespaces already runs in the netns.
      if (backend.connectNetwork && network.netNsPath) {
        step = 'connect the network';
        const disconnect = await backend.connectNetwork(network.netNsPath);
        undo.push('disconnect the network', disconnect);
      }

      const mapping = options.mapping ?? new ContainerIdMapping();
      const sandbox = new Sandbox({
        id: sandboxId,
        netNsPath: network.netNsPath,
        netNsCreated: network.netNsCreated && !config.networkConfig.netNsCreated,
        backend,
        mapping,
        builtIn,
        stateDir,
        onDeleted: () => live.delete(sandboxId),
      });

      step = 'create the container';
      const process = await sandbox.addContainer(config.containers[0]!, options.bundlePath);
      undo.push('remove the container', () => sandbox.removeContainer(process.containerId));

      step = 'container list';
      if (sandbox.containers.length !== 1) {
        throw new NodevisorError(
          `BUG: Container list from sandbox is wrong, expecting only one container, found ${sandbox.containers.length} containers`,
          { code: 'EFAIL' },
        );
      }

      if (!builtIn) {
        step = 'container id mapping';
        await mapping.add(options.containerId, sandboxId);
        sandbox.markMapped(options.containerId);
      }
      live.set(sandboxId, sandbox);
      undo.commit();
      logger('sandbox', { sandbox: sandboxId }).info({ isolation }, 'sandbox created');
      return { sandbox, process };
    } catch (err) {
      const rollback = await undo.unwind({ sandbox: sandboxId });
      throw stepError('createSandbox', step, err, rollback);
    }
  });
}

/**
 * Creates a container in an existing sandbox (not started): Kata B9's steps in order, the
 * mapping written once. Resolves to the container's process.
 */
export function createContainer(options: CreateContainerOptions): Promise<SandboxProcess> {
  return withSpan('createContainer', { container: String(options?.containerId) }, async (span) => {
    const undo = new UndoStack();
    let step = 'check the options';
    try {
      checkCommon(options, 'createContainer');
      const spec: Spec = setEphemeralStorageType(options.spec);

      step = 'container config';
      const config = containerConfig(spec, {
        bundlePath: options.bundlePath,
        containerId: options.containerId,
        console: options.console ?? '',
        detach: options.disableOutput ?? false,
      });

      step = 'rootfs';
      if (!options.rootFs.mounted) config.rootFs = (await resolveRootFs(options.rootFs)).rootFs;

      step = 'sandbox id';
      const sandboxId = sandboxIdOf(spec);
      span.setAttribute('sandbox', sandboxId);
      const sandbox = options.sandbox ?? findSandbox(sandboxId);
      if (!sandbox) throw new NodevisorError(`sandbox ${sandboxId} is not running in this process`, { code: 'ENOENT' });
      if (sandbox.id !== sandboxId) {
        throw invalid(`the spec names sandbox ${sandboxId}, but the container was given sandbox ${sandbox.id}`);
      }

      step = 'create the container';
      const process = await sandbox.addContainer(config, options.bundlePath);
      undo.push('remove the container', () => sandbox.removeContainer(process.containerId));

      if (!options.builtIn) {
        step = 'container id mapping';
        const mapping = sandbox.mapping;
        await mapping.add(options.containerId, sandboxId);
        undo.push('delete the container id mapping', () => mapping.delete(options.containerId));
        sandbox.markMapped(options.containerId);
      }

      step = 'prestart hooks';
      await preStartHooks(config.spec, options.containerId, options.bundlePath, sandbox.netNsPath ? { netns: sandbox.netNsPath } : {});
      undo.commit();
      return process;
    } catch (err) {
      const rollback = await undo.unwind({ container: String(options?.containerId) });
      throw stepError('createContainer', step, err, rollback);
    }
  });
}
