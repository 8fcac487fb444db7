// Choosing how a kernel boots, by its content: an ELF with a Xen PVH note boots through PVH (or,
// when it also carries the nodevisor user-entry note, straight into its 64-bit CPL-3 entry); a
// file with a Linux setup header boots through the 64-bit Linux boot protocol. Anything else is
// refused with an error naming what was looked for.
//
// Runs on: the VM-building thread.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <string>

#include "vmm/arch/x86_64/bzimage.h"
#include "vmm/arch/x86_64/elf_loader.h"
#include "vmm/memory/guest_memory.h"
#include "sys/result.h"

namespace nodevisor::vmm::x86_64 {

enum class BootMode {
  kPvh,          // 32-bit protected mode at the PVH entry, %ebx = hvm_start_info
  kLinux64,      // 64-bit CPL 0 at bzImage load address + 0x200, %rsi = boot_params
  kNodevisorUser // 64-bit CPL 3 at the nodevisor user entry, %rdi = hvm_start_info
};
const char* boot_mode_name(BootMode mode);

struct LoadedImage {
  BootMode mode = BootMode::kPvh;
  uint64_t entry = 0;
  uint64_t end_address = 0;  // the initrd goes above this
  uint64_t generation_gpa = 0;  // where the guest reads the VM generation id (elf_loader.h), or 0
  LoadedBzImage bzimage;     // kLinux64 only
};

struct BootEntry {
  BootMode mode = BootMode::kPvh;
  uint64_t entry = 0;
  uint64_t boot_data = 0;  // hvm_start_info or boot_params address
};

// Checks and loads `image` into fresh guest memory. `use_user_entry`: start a guest that has
// the nodevisor note at its CPL-3 entry (else at its PVH entry, as any other VMM would).
Result<LoadedImage> load_kernel_image(GuestMemory& memory, std::span<const uint8_t> image, bool use_user_entry);

// Writes the boot data for `loaded` (command line, initrd, memory map, page tables) and says
// where the boot vCPU starts.
Result<BootEntry> write_boot_data(GuestMemory& memory, std::span<const uint8_t> image, const LoadedImage& loaded,
                                  const std::string& cmdline, std::span<const uint8_t> initrd);

// The boot vCPU's registers for `entry`; `sregs` comes from KVM_GET_SREGS.
void boot_registers(const BootEntry& entry, kvm_regs& regs, kvm_sregs& sregs);

}  // namespace nodevisor::vmm::x86_64
