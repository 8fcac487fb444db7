#include "vmm/arch/x86_64/kernel_image.h"

#include "vmm/arch/x86_64/long_mode.h"
#include "vmm/arch/x86_64/pvh_boot.h"

namespace nodevisor::vmm::x86_64 {

const char* boot_mode_name(BootMode mode) {
  switch (mode) {
    case BootMode::kPvh: return "pvh";
    case BootMode::kLinux64: return "linux64";
    case BootMode::kNodevisorUser: return "nodevisor-user";
  }
  return "unknown";
}

Result<LoadedImage> load_kernel_image(GuestMemory& memory, std::span<const uint8_t> image, bool use_user_entry) {
  LoadedImage loaded;
  if (looks_like_elf(image)) {
    auto elf = load_pvh_elf(memory, image);
    if (!elf.ok()) return elf.error();
    const bool user = use_user_entry && elf->user_entry != 0;
    loaded.mode = user ? BootMode::kNodevisorUser : BootMode::kPvh;
    loaded.entry = user ? elf->user_entry : elf->pvh_entry;
    loaded.end_address = elf->end_address;
    loaded.generation_gpa = elf->generation_gpa;
    return loaded;
  }
  if (looks_like_bzimage(image)) {
    auto bz = load_bzimage(memory, image);
    if (!bz.ok()) return bz.error();
    loaded.mode = BootMode::kLinux64;
    loaded.entry = bz->entry64;
    loaded.end_address = bz->end_address;
    loaded.bzimage = bz.value();
    return loaded;
  }
  return plain_error("EBADKERNEL",
                     "the kernel is neither an ELF file (no \\x7fELF magic) nor a Linux bzImage (no \"HdrS\" setup header)");
}

Result<BootEntry> write_boot_data(GuestMemory& memory, std::span<const uint8_t> image, const LoadedImage& loaded,
                                  const std::string& cmdline, std::span<const uint8_t> initrd) {
  BootEntry entry{loaded.mode, loaded.entry, 0};
  if (loaded.mode == BootMode::kLinux64) {
    auto params = write_linux_boot_params(memory, image, loaded.bzimage, cmdline, initrd);
    if (!params.ok()) return params.error();
    NV_TRY(write_long_mode_tables(memory, Privilege::kKernel));
    entry.boot_data = params.value();
    return entry;
  }
  auto start_info = write_pvh_boot_data(memory, PvhBootData{cmdline, initrd, loaded.end_address});
  if (!start_info.ok()) return start_info.error();
  if (loaded.mode == BootMode::kNodevisorUser) NV_TRY(write_long_mode_tables(memory, Privilege::kUser));
  entry.boot_data = start_info.value();
  return entry;
}

void boot_registers(const BootEntry& entry, kvm_regs& regs, kvm_sregs& sregs) {
  switch (entry.mode) {
    case BootMode::kPvh:
      pvh_entry_registers(entry.entry, entry.boot_data, regs, sregs);
      return;
    case BootMode::kLinux64:
      long_mode_registers(Privilege::kKernel, entry.entry, regs, sregs);
      regs.rsi = entry.boot_data;
      return;
    case BootMode::kNodevisorUser:
      long_mode_registers(Privilege::kUser, entry.entry, regs, sregs);
      regs.rdi = entry.boot_data;
      return;
  }
}

}  // namespace nodevisor::vmm::x86_64
