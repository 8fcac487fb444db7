/**
 * A container's root filesystem, as Kata's `vc.RootFs`.
 *
 * - Host-mounted (the legacy way): `{ target: <dir>, mounted: true }`; the directory is
 *   shared with the guest.
 * - Block device: `{ source: '/dev/mapper/...', type: 'ext4', options: [...], mounted: false }`;
 *   the device is hot-plugged into the VM and the agent mounts it with `type` and `options`.
 */
export interface RootFs {
  /** Host path of the block device or image file holding the rootfs. */
  source?: string;
  /** Where the rootfs is (or will be) mounted. */
  target?: string;
  /** Filesystem type (ext4, xfs, ...). */
  type?: string;
  /** fstab-style mount options. */
  options?: string[];
  /** True when the rootfs is already mounted on the host at `target`. */
  mounted: boolean;
}
