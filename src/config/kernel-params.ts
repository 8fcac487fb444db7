/**
 * Default guest kernel parameters, as Kata's katautils sets them (reference B1–B5).
 */
import { invalid } from '../errors.js';
import type { HypervisorConfig, Param, RuntimeConfig } from './types.js';

/** The systemd unit a guest booted from an image runs (Kata's default target name). */
export const SYSTEMD_UNIT_NAME = 'kata-containers.target';

/** Parameters a guest that runs systemd needs (Kata B1). */
export const SYSTEMD_KERNEL_PARAMS: readonly Param[] = Object.freeze([
  { key: 'init', value: '/usr/lib/systemd/systemd' },
  { key: 'systemd.unit', value: SYSTEMD_UNIT_NAME },
  { key: 'systemd.mask', value: 'systemd-networkd.service' },
  { key: 'systemd.mask', value: 'systemd-networkd.socket' },
]);

/** Services masked when tracing is off, to make the guest boot faster (Kata B2, 13 entries). */
export const NO_TRACE_KERNEL_PARAMS: readonly Param[] = Object.freeze(
  [
    'systemd-journald.service',
    'systemd-journald.socket',
    'systemd-journal-flush.service',
    'systemd-udevd.service',
    'systemd-udevd.socket',
    'systemd-udev-trigger.service',
    'systemd-timesyncd.service',
    'systemd-update-utmp.service',
    'systemd-tmpfiles-setup.service',
    'systemd-tmpfiles-cleanup.service',
    'systemd-tmpfiles-cleanup.timer',
    'tmp.mount',
    'systemd-random-seed.service',
  ].map((value) => ({ key: 'systemd.mask', value })),
);

/**
 * The default parameters: none without systemd; the systemd ones with it, plus the no-trace
 * masks when tracing is off. Always a fresh array of fresh objects.
 */
export function getKernelParams(needSystemd: boolean, trace: boolean): Param[] {
  if (!needSystemd) return [];
  const list = trace ? SYSTEMD_KERNEL_PARAMS : [...SYSTEMD_KERNEL_PARAMS, ...NO_TRACE_KERNEL_PARAMS];
  return list.map((p) => ({ ...p }));
}

/** A guest that boots from a rootfs image (not an initrd) runs systemd. */
export function needSystemd(hypervisorConfig: Pick<HypervisorConfig, 'imagePath'>): boolean {
  return typeof hypervisorConfig.imagePath === 'string' && hypervisorConfig.imagePath !== '';
}

function checkParam(param: Param, where: string): Param {
  if (typeof param !== 'object' || param === null) throw invalid(`${where} is not a {key, value} object`);
  if (typeof param.key !== 'string' || param.key === '') {
    throw invalid(`${where} has an empty key (value ${JSON.stringify(param.value ?? '')})`);
  }
  if (param.value !== undefined && typeof param.value !== 'string') {
    throw invalid(`${where} (${param.key}) has a value that is not a string`);
  }
  if (/\s/.test(param.key) || /\s/.test(param.value ?? '')) {
    throw invalid(`${where} (${param.key}) contains whitespace, which would split it on the command line`);
  }
  return { key: param.key, value: param.value ?? '' };
}

/**
 * Returns a new RuntimeConfig whose kernel parameters are the defaults for it, then the
 * user's own (later ones take priority in the guest kernel). Duplicates are kept, as Kata
 * does. The input is not changed. A parameter with an empty key is an error naming it.
 */
export function setKernelParams(runtimeConfig: RuntimeConfig): RuntimeConfig {
  const hc = runtimeConfig.hypervisorConfig;
  const defaults = getKernelParams(needSystemd(hc), runtimeConfig.trace);
  const user = (hc.kernelParams ?? []).map((p, i) => checkParam(p, `kernel parameter #${i + 1}`));
  return {
    ...runtimeConfig,
    hypervisorConfig: { ...hc, kernelParams: [...defaults, ...user] },
  };
}

/** Renders parameters as a kernel command line (`key=value key2`). */
export function kernelParamsToCmdline(params: readonly Param[]): string {
  return params
    .map((p, i) => checkParam(p, `kernel parameter #${i + 1}`))
    .map((p) => (p.value === '' ? p.key : `${p.key}=${p.value}`))
    .join(' ');
}
