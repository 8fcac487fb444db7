#include "vmm/arch/x86_64/memory_map.h"

#include <algorithm>

#include "vmm/arch/x86_64/layout.h"

namespace nodevisor::vmm::x86_64 {

std::vector<RamRange> guest_ram_map(const GuestMemory& memory) {
  std::vector<RamRange> map;
  map.push_back({0, kEbdaStart});
  for (const GuestRegion& region : memory.regions()) {
    const uint64_t start = std::max(region.guest_address, kKernelMinAddress);
    const uint64_t end = region.guest_address + region.size;
    if (end > start) map.push_back({start, end - start});
  }
  return map;
}

}  // namespace nodevisor::vmm::x86_64
