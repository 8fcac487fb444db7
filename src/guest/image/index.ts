/** Guest images: the kernel and the initramfs with the agent as /init (`nodevisor guest build`). */
export { writeCpio, CPIO_MTIME, type CpioEntry } from './cpio.js';
export { buildGuestImage, defaultCacheDir, initramfsEntries, type GuestBuildOptions, type GuestImage } from './build.js';
export { DEFAULT_KERNEL_PACKAGE, resolveKernelPackage, type KernelPackage } from './debian.js';
export { DEFAULT_GUEST_MODULES, selectModules, type ModuleSelection, type ResolvedModule } from './modules.js';
export { readModInfo, type ModInfo } from './modinfo.js';
export { extractVmlinux } from './vmlinux.js';
