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
constexpr uint64_t kLongModeGdtAddress = 0x600;   // GDT of a vCPU the VMM starts in 64-bit mode
constexpr uint64_t kZeroPageAddress = 0x8000;     // struct boot_params (bzImage boot)
constexpr uint64_t kPml4Address = 0x9000;         // identity page tables of a 64-bit start:
constexpr uint64_t kPdptAddress = 0xa000;         //   PML4, one PDPT,
constexpr uint64_t kPdAddress = 0xb000;           //   four PDs of 2 MiB pages (0xb000-0xefff): 4 GiB
constexpr uint64_t kIdentityMappedBytes = 4ull << 30;
constexpr uint64_t kLongModeTssAddress = 0x10000; // 64-bit TSS with a full I/O bitmap (3 pages)
constexpr uint64_t kCmdlineAddress = 0x20000;
constexpr uint64_t kCmdlineMaxSize = 0x10000;     // including the terminating NUL
constexpr uint64_t kEbdaStart = 0x9fc00;          // legacy RAM ends here (EBDA, VGA, BIOS above)
constexpr uint64_t kKernelMinAddress = 0x100000;  // 1 MiB

}  // namespace nodevisor::vmm::x86_64
