// Where the VMM puts boot data in guest-physical memory (x86-64). The first MiB is the VMM's:
// kernels load at or above kKernelMinAddress. Values follow Firecracker's and the PVH ABI's
// habits so a Linux guest sees nothing unusual.
#pragma once

#include <cstdint>

namespace nodevisor::vmm::x86_64 {

constexpr uint64_t kBootGdtAddress = 0x500;       // GDT matching the PVH entry selectors
constexpr uint64_t kBootIdtAddress = 0x520;       // empty IDT
constexpr uint64_t kPvhStartInfoAddress = 0x6000; // struct hvm_start_info
constexpr uint64_t kPvhModlistAddress = 0x6040;   // hvm_modlist_entry[1] (the initrd)
constexpr uint64_t kPvhMemmapAddress = 0x7000;    // hvm_memmap_table_entry[]
constexpr uint64_t kPvhMemmapMaxEntries = 16;
constexpr uint64_t kCmdlineAddress = 0x20000;
constexpr uint64_t kCmdlineMaxSize = 0x10000;     // including the terminating NUL
constexpr uint64_t kEbdaStart = 0x9fc00;          // legacy RAM ends here (EBDA, VGA, BIOS above)
constexpr uint64_t kKernelMinAddress = 0x100000;  // 1 MiB

}  // namespace nodevisor::vmm::x86_64
