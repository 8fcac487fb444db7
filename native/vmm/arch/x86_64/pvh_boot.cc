#include "vmm/arch/x86_64/pvh_boot.h"
#include "vmm/arch/x86_64/segments.h"

#include <cstring>
#include <vector>

#include "vmm/arch/x86_64/layout.h"
#include "vmm/arch/x86_64/memory_map.h"

namespace nodevisor::vmm::x86_64 {

namespace {

// xen/include/public/arch-x86/hvm/start_info.h, version 1.
constexpr uint32_t kHvmStartMagic = 0x336ec578;
struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);
struct HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};

// Selectors of the boot GDT; the probe and Linux reload their own GDT right away.
constexpr uint16_t kBootCodeSelector = 0x08;
constexpr uint16_t kBootDataSelector = 0x10;
constexpr uint16_t kBootTssSelector = 0x18;
constexpr uint64_t kBootGdt[] = {
    0,                      // null
    0x00cf9b000000ffff,     // 0x08 code, 32-bit, flat
    0x00cf93000000ffff,     // 0x10 data, flat
    0x008f8b000000ffff,     // 0x18 TSS (busy), as KVM requires a usable TR on entry
};


}  // namespace

Result<uint64_t> write_pvh_boot_data(GuestMemory& memory, const PvhBootData& data) {
  if (data.cmdline.size() + 1 > kCmdlineMaxSize) {
    return plain_error("EINVAL", "the kernel command line is longer than " + std::to_string(kCmdlineMaxSize - 1) + " bytes");
  }
  if (memory.size() < kKernelMinAddress) return plain_error("EINVAL", "guest memory is smaller than 1 MiB");

  NV_TRY(memory.write(kBootGdtAddress, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(kBootGdt), sizeof kBootGdt)));
  std::vector<uint8_t> cmdline(data.cmdline.begin(), data.cmdline.end());
  cmdline.push_back(0);
  NV_TRY(memory.write(kCmdlineAddress, cmdline));

  // Memory map: low RAM below the EBDA, then each RAM region from 1 MiB up.
  std::vector<HvmMemmapEntry> memmap;
  for (const RamRange& range : guest_ram_map(memory)) memmap.push_back({range.address, range.size, kE820Ram, 0});
  NV_TRY(memory.write(kPvhMemmapAddress, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(memmap.data()),
                                                                  memmap.size() * sizeof(HvmMemmapEntry))));

  HvmStartInfo info{};
  info.magic = kHvmStartMagic;
  info.version = 1;
  info.cmdline_paddr = kCmdlineAddress;
  info.memmap_paddr = kPvhMemmapAddress;
  info.memmap_entries = static_cast<uint32_t>(memmap.size());

  if (!data.initrd.empty()) {
    // The initrd goes at the top of low RAM, page-aligned, and must clear the kernel.
    const GuestRegion& low = memory.regions().front();
    const uint64_t size = data.initrd.size();
    if (size > low.size) return plain_error("E2BIG", "the initrd is larger than guest memory");
    const uint64_t address = (low.size - size) & ~uint64_t{0xfff};
    if (address < data.kernel_end) {
      return plain_error("E2BIG", "kernel and initrd do not fit together in guest memory");
    }
    NV_TRY(memory.write(address, data.initrd));
    HvmModlistEntry module{address, size, 0, 0};
    NV_TRY(memory.write_obj(kPvhModlistAddress, module));
    info.nr_modules = 1;
    info.modlist_paddr = kPvhModlistAddress;
  }
  NV_TRY(memory.write_obj(kPvhStartInfoAddress, info));
  return kPvhStartInfoAddress;
}

void pvh_entry_registers(uint64_t entry, uint64_t start_info, kvm_regs& regs, kvm_sregs& sregs) {
  regs = kvm_regs{};
  regs.rflags = 0x2;  // bit 1 is reserved-one; interrupts off
  regs.rip = entry;
  regs.rbx = start_info;

  sregs.cs = flat_segment(kBootCodeSelector, 0xb);  // execute/read, accessed
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = flat_segment(kBootDataSelector, 0x3);
  sregs.tr = kvm_segment{};
  sregs.tr.selector = kBootTssSelector;
  sregs.tr.limit = 0x67;
  sregs.tr.type = 0xb;  // busy 32-bit TSS
  sregs.tr.present = 1;
  sregs.ldt = kvm_segment{};
  sregs.ldt.type = 0x2;
  sregs.ldt.unusable = 1;
  sregs.gdt.base = kBootGdtAddress;
  sregs.gdt.limit = sizeof kBootGdt - 1;
  sregs.idt.base = kBootIdtAddress;
  sregs.idt.limit = 0;
  sregs.cr0 = 0x11;  // PE | ET, paging off
  sregs.cr3 = 0;
  sregs.cr4 = 0;
  sregs.efer = 0;
}

}  // namespace nodevisor::vmm::x86_64
