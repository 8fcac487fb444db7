#include "vmm/arch/x86_64/long_mode.h"
#include "vmm/arch/x86_64/segments.h"

#include <array>

#include "vmm/arch/x86_64/layout.h"

namespace nodevisor::vmm::x86_64 {

namespace {

constexpr uint64_t kPagePresent = 1u << 0;
constexpr uint64_t kPageWritable = 1u << 1;
constexpr uint64_t kPageUser = 1u << 2;
constexpr uint64_t kPageLarge = 1u << 7;  // a 2 MiB leaf in a PD
constexpr uint64_t kLargePage = 2u << 20;
constexpr uint64_t kEntriesPerTable = 512;
constexpr uint64_t kPageDirectories = kIdentityMappedBytes / (kLargePage * kEntriesPerTable);
static_assert(kPdAddress + kPageDirectories * 4096 <= kLongModeTssAddress);

constexpr uint64_t kCr0ProtectionEnable = 1u << 0;
constexpr uint64_t kCr0ExtensionType = 1u << 4;
constexpr uint64_t kCr0NumericError = 1u << 5;
constexpr uint64_t kCr0Paging = 1u << 31;
constexpr uint64_t kCr4Pae = 1u << 5;
constexpr uint64_t kEferLme = 1u << 8;
constexpr uint64_t kEferLma = 1u << 10;
constexpr uint64_t kRflagsReserved = 1u << 1;
constexpr uint64_t kRflagsIopl3 = 3u << 12;

// The 64-bit TSS: 104 bytes, then the I/O permission bitmap (one bit per port, 0 = allowed),
// then the 0xff byte the CPU requires after the bitmap. The bitmap offset sits at byte 102.
constexpr uint64_t kTssHeaderSize = 104;
constexpr uint64_t kIoBitmapOffsetField = 102;
constexpr uint64_t kIoBitmapSize = 65536 / 8;
constexpr uint64_t kTssLimit = kTssHeaderSize + kIoBitmapSize;  // the last byte: the 0xff

// Descriptors: flat code/data (base 0, limit 4 GiB); L=1 for 64-bit code.
constexpr uint64_t kKernelCode64 = 0x00af9b000000ffff;
constexpr uint64_t kKernelData = 0x00cf93000000ffff;
constexpr uint64_t kUserData = 0x00cff3000000ffff;
constexpr uint64_t kUserCode64 = 0x00affb000000ffff;

// A 16-byte available 64-bit TSS descriptor (type 9) for `base` and `limit`.
std::array<uint64_t, 2> tss_descriptor(uint64_t base, uint64_t limit) {
  uint64_t low = (limit & 0xffff) | ((base & 0xffffff) << 16) | (uint64_t{0x89} << 40) |
                 (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
  return {low, base >> 32};
}


}  // namespace

Status write_long_mode_tables(GuestMemory& memory, Privilege privilege) {
  const uint64_t table_flags = kPagePresent | kPageWritable | (privilege == Privilege::kUser ? kPageUser : 0);
  NV_TRY(memory.write_obj(kPml4Address, kPdptAddress | table_flags));
  for (uint64_t pd = 0; pd < kPageDirectories; ++pd) {
    NV_TRY(memory.write_obj(kPdptAddress + pd * 8, (kPdAddress + pd * 4096) | table_flags));
  }
  std::array<uint64_t, kEntriesPerTable> entries;
  for (uint64_t pd = 0; pd < kPageDirectories; ++pd) {
    for (uint64_t i = 0; i < kEntriesPerTable; ++i) {
      entries[i] = ((pd * kEntriesPerTable + i) * kLargePage) | table_flags | kPageLarge;
    }
    NV_TRY(memory.write(kPdAddress + pd * 4096,
                        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(entries.data()), sizeof entries)));
  }

  const auto tss = tss_descriptor(kLongModeTssAddress, kTssLimit);
  const uint64_t gdt[] = {0, 0, kKernelCode64, kKernelData, kUserData, kUserCode64, tss[0], tss[1]};
  static_assert(sizeof gdt == kLongModeTss + 16);
  NV_TRY(memory.write(kLongModeGdtAddress, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(gdt), sizeof gdt)));

  NV_TRY(memory.write_obj(kLongModeTssAddress + kIoBitmapOffsetField, static_cast<uint16_t>(kTssHeaderSize)));
  NV_TRY(memory.write_obj(kLongModeTssAddress + kTssLimit, uint8_t{0xff}));
  return {};
}

void long_mode_registers(Privilege privilege, uint64_t rip, kvm_regs& regs, kvm_sregs& sregs) {
  const bool user = privilege == Privilege::kUser;
  regs = kvm_regs{};
  regs.rip = rip;
  regs.rflags = kRflagsReserved | (user ? kRflagsIopl3 : 0);  // interrupts off

  const uint8_t dpl = user ? 3 : 0;
  sregs.cs = flat_segment(user ? kLongModeUserCode : kLongModeKernelCode, 0xb, true, dpl);  // execute/read, accessed
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss =
      flat_segment(user ? kLongModeUserData : kLongModeKernelData, 0x3, false, dpl);  // read/write, accessed
  sregs.tr = kvm_segment{};
  sregs.tr.base = kLongModeTssAddress;
  sregs.tr.limit = static_cast<uint32_t>(kTssLimit);
  sregs.tr.selector = kLongModeTss;
  sregs.tr.type = 0xb;  // busy 64-bit TSS
  sregs.tr.present = 1;
  sregs.ldt = kvm_segment{};
  sregs.ldt.type = 0x2;
  sregs.ldt.unusable = 1;
  sregs.gdt.base = kLongModeGdtAddress;
  sregs.gdt.limit = kLongModeTss + 16 - 1;
  // No IDT: an exception ends in a triple fault, which the VMM reports as "shutdown".
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
  sregs.cr0 = kCr0ProtectionEnable | kCr0ExtensionType | kCr0NumericError | kCr0Paging;
  sregs.cr3 = kPml4Address;
  sregs.cr4 = kCr4Pae;
  sregs.efer = kEferLme | kEferLma;
}

}  // namespace nodevisor::vmm::x86_64
