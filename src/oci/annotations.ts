/**
 * What the container engine says through annotations (Kata H8, H9): whether this spec is a
 * pod's sandbox or a container in it, and which sandbox it belongs to.
 */
import { NodevisorError } from '../errors.js';
import { validateId } from './ids.js';
import type { Spec } from './spec.js';

export type ContainerType = 'pod_sandbox' | 'pod_container';

/** Annotation keys that carry the container type, checked in this order (CRI, CRI-O, dockershim). */
const CONTAINER_TYPE_KEYS = [
  'io.kubernetes.cri.container-type',
  'io.kubernetes.cri-o.ContainerType',
  'io.kubernetes.docker.type',
] as const;

/** Annotation keys that carry the sandbox id, checked in this order. */
const SANDBOX_ID_KEYS = [
  'io.kubernetes.cri.sandbox-id',
  'io.kubernetes.cri-o.SandboxID',
  'io.kubernetes.sandbox.id',
] as const;

const TYPE_VALUES: Record<string, ContainerType> = {
  sandbox: 'pod_sandbox',
  podsandbox: 'pod_sandbox',
  container: 'pod_container',
};

/**
 * The first container-type key present decides; its value may be any of the known values,
 * whichever key it came from. No key: a sandbox (a single container outside Kubernetes).
 */
export function containerType(spec: Pick<Spec, 'annotations'>): ContainerType {
  const annotations = spec.annotations ?? {};
  for (const key of CONTAINER_TYPE_KEYS) {
    if (!Object.hasOwn(annotations, key)) continue;
    const value = annotations[key]!;
    const type = Object.hasOwn(TYPE_VALUES, value) ? TYPE_VALUES[value] : undefined;
    if (!type) throw new NodevisorError(`Unknown container type ${value}`, { code: 'EINVAL' });
    return type;
  }
  return 'pod_sandbox';
}

/** The sandbox id of a pod container, from the first sandbox-id key present; it must be a valid id. */
export function sandboxId(spec: Pick<Spec, 'annotations'>): string {
  const annotations = spec.annotations ?? {};
  for (const key of SANDBOX_ID_KEYS) {
    if (Object.hasOwn(annotations, key)) return validateId(annotations[key], `sandbox ID (annotation ${key})`);
  }
  throw new NodevisorError('Could not find sandbox ID', { code: 'EINVAL' });
}
