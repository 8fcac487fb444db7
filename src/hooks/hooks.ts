/**
 * The OCI hook lists of a spec, run in order, stopping at the first failure (Kata B20, B22).
 *
 * Where and when each kind runs in nodevisor:
 * - prestart: on the host, inside the sandbox's network namespace, after the netns exists
 *   and before the VM starts (for a sandbox) or after the container is created (pod container).
 *   This is where CNI-style hooks configure the sandbox's network.
 * - poststart: on the host, in the sandbox netns, after the container's process started;
 *   a failure fails the start.
 * - poststop: on the host, in the sandbox netns, after the container stopped; a failure fails
 *   the delete (and the id mapping is kept).
 */
import { NodevisorError, errorCode } from '../errors.js';
import { logger } from '../log/logger.js';
import type { Hook, Spec } from '../oci/spec.js';
import { runHook, type RunHookOptions } from './run-hook.js';
import type { ContainerStatus, HookState } from './state.js';

export type HookKind = 'prestart' | 'poststart' | 'poststop';

export interface HookRunOptions extends RunHookOptions {
  /** Pid reported in the state; defaults to this process's. */
  pid?: number;
}

const STATUS_OF: Record<HookKind, ContainerStatus> = {
  prestart: 'creating',
  poststart: 'running',
  poststop: 'stopped',
};

/** The state handed to the hooks of `kind` for `containerId`. */
function hookState(spec: Spec, containerId: string, bundlePath: string, kind: HookKind, pid?: number): HookState {
  const state: HookState = {
    ociVersion: spec.ociVersion ?? '',
    id: containerId,
    status: STATUS_OF[kind],
    pid: pid ?? process.pid,
    bundle: bundlePath,
  };
  if (spec.annotations) state.annotations = { ...spec.annotations };
  return state;
}

async function runHooks(
  kind: HookKind,
  hooks: readonly Hook[] | undefined,
  spec: Spec,
  containerId: string,
  bundlePath: string,
  options: HookRunOptions,
): Promise<void> {
  if (!hooks || hooks.length === 0) return;
  const state = hookState(spec, containerId, bundlePath, kind, options.pid);
  for (const [i, hook] of hooks.entries()) {
    try {
      await runHook(hook, state, options);
    } catch (err) {
      logger('hooks', { container: containerId }).error({ kind, index: i, err }, 'hook error');
      throw new NodevisorError(`${kind} hook #${i + 1} failed: ${(err as Error).message}`, {
        code: errorCode(err) ?? 'EHOOK_FAILED',
        path: hook.path,
        cause: err,
      });
    }
  }
}

export function preStartHooks(spec: Spec, containerId: string, bundlePath: string, options: HookRunOptions = {}) {
  return runHooks('prestart', spec.hooks?.prestart, spec, containerId, bundlePath, options);
}

export function postStartHooks(spec: Spec, containerId: string, bundlePath: string, options: HookRunOptions = {}) {
  return runHooks('poststart', spec.hooks?.poststart, spec, containerId, bundlePath, options);
}

export function postStopHooks(spec: Spec, containerId: string, bundlePath: string, options: HookRunOptions = {}) {
  return runHooks('poststop', spec.hooks?.poststop, spec, containerId, bundlePath, options);
}
