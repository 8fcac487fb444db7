/**
 * Runtime configuration shapes: Kata's `HypervisorConfig`, `FactoryConfig` and
 * `RuntimeConfig`, with the field names in camelCase (DESIGN §2).
 */

/** One kernel command-line parameter: `key=value`, or `key` alone when `value` is empty. */
export interface Param {
  key: string;
  value: string;
}

export interface HypervisorConfig {
  /** Guest kernel: an ELF with a PVH note (vmlinux, the probe guest) or a bzImage. */
  kernelPath: string;
  /** A rootfs disk image the guest boots from (the guest then runs systemd). */
  imagePath?: string;
  /** An initramfs (the agent as /init). */
  initrdPath?: string;
  kernelParams: Param[];
  /** Guest memory in MiB. */
  memorySize?: number;
  numVCPUs?: number;
  /** Empty virtio-blk slots the VM boots with, for rootfs hot-plug. */
  hotplugSlots?: number;
  /**
   * Empty virtio-net slots the VM boots with, for the sandbox's network endpoints (always
   * hot-plugged, as Kata B39 does for factory VMs). A direct sandbox boot defaults to 2.
   */
  hotplugNetSlots?: number;
  debug?: boolean;
}

export interface FactoryConfig {
  /** Boot one template VM and make every new VM a copy-on-write clone of it. */
  template: boolean;
  /** Keep this many ready VMs in a pool (0: no pool). */
  vmCacheNumber: number;
  /** Unix socket of a VM cache server, for a pool shared between processes. */
  vmCacheEndpoint: string;
}

export interface RuntimeConfig {
  hypervisorConfig: HypervisorConfig;
  factoryConfig: FactoryConfig;
  /** Tracing on: keeps the systemd journal and udev in the guest (see getKernelParams). */
  trace: boolean;
  /** Run the VM in the host network namespace instead of creating one per sandbox. */
  disableNewNetNs: boolean;
  disableGuestSeccomp?: boolean;
  /** Never hot-plug a block-device rootfs; always use a host-mounted one. */
  disableBlockDeviceUse?: boolean;
}
