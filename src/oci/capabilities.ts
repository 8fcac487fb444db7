/**
 * Process capabilities come in two forms: the object of five sets of runtime-spec 1.0, and
 * the single array of older specs (before 1.0.0-rc5), which applies to every set (Kata H6).
 */
import type { LinuxCapabilities } from './spec.js';

const SETS = ['bounding', 'effective', 'inheritable', 'permitted', 'ambient'] as const;

/** Always the object form, with all five sets present (empty when not given). */
export function normalizeCapabilities(
  caps: LinuxCapabilities | string[] | null | undefined,
): Required<LinuxCapabilities> {
  const out = { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] } as Required<LinuxCapabilities>;
  if (caps === null || caps === undefined) return out;
  if (Array.isArray(caps)) {
    for (const set of SETS) out[set] = [...caps];
    return out;
  }
  for (const set of SETS) {
    const list = caps[set];
    if (Array.isArray(list)) out[set] = [...list];
  }
  return out;
}
