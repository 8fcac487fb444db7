// The guest's RAM map as both boot protocols hand it over (PVH hvm_memmap_table_entry and the
// Linux e820 table carry the same address/size/type triple): low RAM below the EBDA, then each
// RAM region from 1 MiB up. Everything else (the first MiB's BIOS area, where the VMM puts ACPI
// tables, and the MMIO hole) is left out, so the guest treats it as reserved.
//
// Runs on: the VM-building thread.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/memory/guest_memory.h"

namespace nodevisor::vmm::x86_64 {

constexpr uint32_t kE820Ram = 1;

struct RamRange {
  uint64_t address;
  uint64_t size;
};

std::vector<RamRange> guest_ram_map(const GuestMemory& memory);

}  // namespace nodevisor::vmm::x86_64
